"""Sessions that end after an idle period, without a database write on every request.

Django offers idle expiry only as SESSION_SAVE_EVERY_REQUEST: one UPDATE per request, and a
400 for any request whose session was deleted meanwhile (a sign-out in another tab), even
when that request had just created a key whose secret the 400 then hid. Here a session is
saved again only once a small share of its idle period has passed, and a save that fails
never replaces the answer the view gave: that answer may carry a committed write's result.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.contrib.sessions.backends import db
from django.contrib.sessions.exceptions import SessionInterrupted
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.db import connections, router
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.cache import patch_vary_headers

log = logging.getLogger("t0admin.sessions")

# A session is saved again once this share of its idle period has passed since its last
# save: it then ends between 99% and 100% of the idle period after the last request, and
# a user clicking all day costs one write every 5 minutes (with the 8-hour default).
REFRESH_SHARE = 0.01


# Django's session model, django.contrib.sessions.models.Session.
STORED_SESSION = (
    "SELECT session_key, session_data, expire_date FROM django_session "
    "WHERE session_key = %s AND expire_date > %s"
)


class SessionStore(db.SessionStore):
    """Django's database sessions, remembering when the stored row expires."""

    stored_expiry: datetime | None = None

    def _get_session_from_db(self) -> Any:
        """Django's query (the session, if not expired) in plain SQL: building it with the
        ORM cost more than the round trip, on every page (bench/RESULTS.md, 2026-12-03).
        The one place the row's expiry passes by; django-stubs omit this method."""
        with connections[router.db_for_read(self.model)].cursor() as cursor:
            cursor.execute(STORED_SESSION, [self.session_key, timezone.now()])
            row = cursor.fetchone()
        if row is None:
            self._session_key = None  # as Django's: a new session, under a new key
            self.stored_expiry = None
            return None
        key, data, self.stored_expiry = row
        return self.model(session_key=key, session_data=data, expire_date=self.stored_expiry)

    def due_for_refresh(self, now: datetime | None = None) -> bool:
        if self.stored_expiry is None:  # no stored session (or never loaded): nothing to keep
            return False
        age = timedelta(seconds=self.get_expiry_age())
        since_save = age - (self.stored_expiry - (now or timezone.now()))
        return since_save >= age * REFRESH_SHARE


class SessionMiddleware(DjangoSessionMiddleware):
    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        session = getattr(request, "session", None)
        if (
            isinstance(session, SessionStore)
            and session.accessed
            and not session.modified
            and session.due_for_refresh()
        ):
            session.modified = True
        try:
            return super().process_response(request, response)  # type: ignore[no-any-return]
        except SessionInterrupted:
            # Signed out in another tab (the row is gone, and stays gone: Django's save
            # only updates), or the database went away. Either way the view's answer
            # stands as it is; the next request finds out about the session.
            log.warning(
                "session not saved for %s: signed out meanwhile or database gone", request.path
            )
            patch_vary_headers(response, ("Cookie",))
            return response
