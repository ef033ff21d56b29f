"""Sessions that end after an idle period, without a database write on every request.

Django offers idle expiry only as SESSION_SAVE_EVERY_REQUEST: one UPDATE per request, and a
400 for any request whose session was deleted meanwhile (a sign-out in another tab), even
when that request had just created a key whose secret the 400 then hid. Here a session is
saved again only once a small share of its idle period has passed, and a save that fails
never replaces the answer the view gave: that answer may carry a committed write's result.
"""

from __future__ import annotations

import enum
import logging
from datetime import datetime, timedelta
from typing import Any

from django.contrib import auth
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


# The session (if not expired), its user and their permissions: one round trip. The user's
# columns and permissions are t0admin.auth's USER_WITH_PERMISSIONS; a session nobody signed
# in to, or whose user is gone, has NULLs there.
STORED_SESSION = """
SELECT s.session_key, s.session_data, s.expire_date, s.user_id AS session_user_id,
       u.*, f.permission_names, f.group_names
FROM keys_session s
LEFT JOIN auth_user u ON u.id = s.user_id
LEFT JOIN LATERAL t0admin.user_with_permissions(u.id) AS f ON u.id IS NOT NULL
WHERE s.session_key = %s AND s.expire_date > %s
"""
SESSION_COLUMNS = 4


class Missing(enum.Enum):
    MISSING = enum.auto()


MISSING = Missing.MISSING


def signed_in_id(data: dict[str, Any]) -> int | None:
    """The user id the session data names (auth.login stores it as a string)."""
    try:
        return int(data[auth.SESSION_KEY])
    except (KeyError, TypeError, ValueError):
        return None


class SessionStore(db.SessionStore):
    """Django's database sessions (keys.models.Session), remembering when the stored row
    expires, and the row of its user that came with it."""

    stored_expiry: datetime | None = None
    # The signed-in user's id as the row had it, and their columns and permissions by name;
    # None: no user came with the session.
    stored_user: tuple[int, dict[str, Any] | None] | None = None

    @classmethod
    def get_model_class(cls) -> type[Any]:
        from keys.models import Session

        return Session

    def create_model_instance(self, data: dict[str, Any]) -> Any:
        session: Any = super().create_model_instance(data)  # a keys.models.Session
        session.user_id = signed_in_id(data)
        return session

    async def acreate_model_instance(self, data: dict[str, Any]) -> Any:
        # Django's async save builds the row without create_model_instance.
        session: Any = await super().acreate_model_instance(data)
        session.user_id = signed_in_id(data)
        return session

    def _get_session_from_db(self) -> Any:
        """Django's query in plain SQL, joined with the user's: building it with the ORM
        cost more than the round trip, on every page (bench/RESULTS.md, 2026-12-03). The
        one place the row passes by; django-stubs omit this method."""
        self.stored_user = None
        with connections[router.db_for_read(self.model)].cursor() as cursor:
            cursor.execute(STORED_SESSION, [self.session_key, timezone.now()])
            row = cursor.fetchone()
            names = [column.name for column in cursor.description or ()]
        if row is None:
            self._session_key = None  # as Django's: a new session, under a new key
            self.stored_expiry = None
            return None
        key, data, self.stored_expiry, user_id = row[:SESSION_COLUMNS]
        if user_id is not None:
            user = dict(zip(names[SESSION_COLUMNS:], row[SESSION_COLUMNS:], strict=True))
            self.stored_user = (user_id, user if user["id"] is not None else None)
        return self.model(session_key=key, session_data=data, expire_date=self.stored_expiry)

    def user_row(self, user_id: int) -> dict[str, Any] | None | Missing:
        """The columns and permissions of `user_id` as they came with this session; None if
        the user is gone; MISSING if they did not come with it (ask the database)."""
        if self.stored_user is None or self.stored_user[0] != user_id:
            return MISSING
        return self.stored_user[1]

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
