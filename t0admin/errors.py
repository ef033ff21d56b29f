"""Error pages: never a traceback, never Django's bare ones, and never "nothing was
changed" unless that is known.

Each page renders from templates/errors/page.html without the request (no context
processor, no session, no query), so it renders with the database gone too. For htmx the
same words go into the dialog (HX-Retarget), where the person who clicked is looking.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import psycopg
from django.core.exceptions import DisallowedHost, RequestDataTooBig, TooManyFieldsSent
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.views import defaults

from keys import service

NOTHING_CHANGED = "Nothing was changed."


def _page(request: HttpRequest, status: int, **context: Any) -> HttpResponse:
    htmx = request.headers.get("HX-Request") == "true"
    template = "errors/page.html#problem" if htmx else "errors/page.html"
    response = HttpResponse(render_to_string(template, context), status=status)
    if htmx:
        response["HX-Retarget"] = "#modal-body"
        response["HX-Reswap"] = "innerHTML"
    return response


def _what_changed() -> tuple[list[str], tuple[str, ...]]:
    """The sentence about changes, and what this request saved before failing."""
    saved = service.saved_writes()
    if saved:
        return [
            "What is listed below was saved before the error, so a retry would do it twice. "
            "A new key's secret cannot be shown again: if a key was created here, disable it "
            "and generate another."
        ], saved
    return [NOTHING_CHANGED], ()


def _held_up(error: BaseException) -> str | None:
    """Words for a database that answered but would not wait any longer (t0admin's lock
    and statement timeouts, README "Configuration"); None for any other failure."""
    cause = error.__cause__
    if isinstance(cause, psycopg.errors.LockNotAvailable):
        return (
            "Another change held what this needed (a key, or the table of keys) for longer "
            "than t0admin waits: another admin's change, or a long transaction or a "
            "migration on the database."
        )
    if isinstance(cause, psycopg.errors.QueryCanceled):
        return (
            "The database did not finish this in the time t0admin allows and cancelled it: "
            "it is overloaded, or a long transaction or a migration holds it up."
        )
    return None


def server_error(request: HttpRequest) -> HttpResponse:
    # Django calls this inside its exception handler, wherever the error arose (a view or
    # a middleware loading the session), so the cause is still in sys.exc_info().
    error = sys.exc_info()[1]
    if isinstance(error, service.OutcomeUnknown):
        response = _page(
            request,
            503,
            title="Not known whether this was saved",
            heading="Not known whether this was saved",
            paragraphs=[
                f"The connection to the database broke while {error.action} was being "
                "committed, and the database could not be asked afterwards. It may or may "
                "not have been saved.",
                "Before trying again, look at the audit trail and the list of keys once the "
                "database answers: what was saved is there.",
                (
                    "A key created here cannot show its secret again: disable it and "
                    "generate another. Sending the same form again is safe: if its first "
                    "sending created a key, the answer names that key instead of creating "
                    "a second one."
                )
                if error.action.startswith(("creating", "rotating"))
                else "Sending the same form again is safe: a key disabled or a description "
                "saved once is not changed twice.",
            ],
            show_audit=True,
        )
        response["Retry-After"] = "5"
        return response
    changed, saved = _what_changed()
    if isinstance(error, OperationalError | InterfaceError):
        held_up = _held_up(error)
        if held_up:
            title, heading, last = "Database busy", "The database is busy", "Try again in a moment."
            paragraphs = [held_up, *changed, last]
        else:
            title, heading = "Database unavailable", "The database cannot be reached"
            paragraphs = [
                "t0admin cannot reach the gateway's PostgreSQL database right now, so API "
                "keys can be neither shown nor changed.",
                *changed,
                "Try again in a moment; if this persists, check that the database is "
                "running and that TENSORZERO_POSTGRES_URL points at it.",
            ]
        response = _page(
            request,
            503,
            title=title,
            heading=heading,
            paragraphs=paragraphs,
            saved=saved,
            show_audit=bool(saved),
        )
        response["Retry-After"] = "5"
        return response
    return _page(
        request,
        500,
        title="Server error",
        heading="Something went wrong",
        paragraphs=[
            "t0admin hit an unexpected error. The details are in the server's log.",
            *changed,
        ],
        saved=saved,
        show_audit=bool(saved),
    )


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if isinstance(exception, DisallowedHost):
        reason = (
            "This address is not one t0admin answers to. Its administrator lists the host "
            "names it serves in T0ADMIN_ALLOWED_HOSTS."
        )
    elif isinstance(exception, RequestDataTooBig | TooManyFieldsSent):
        reason = "The request was larger than t0admin accepts."
    else:
        reason = "t0admin could not read this request. Reload the page and try again."
    return _page(
        request,
        400,
        title="Bad request",
        heading="Bad request",
        paragraphs=[reason, NOTHING_CHANGED],
    )


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The whole page (templates/403.html) for a person who followed a link; for htmx
    (a role taken away while the page was open) the words in the dialog, not a second
    page swapped into a row or the dialog."""
    if request.headers.get("HX-Request") != "true":
        return defaults.permission_denied(request, exception)
    return _page(
        request,
        403,
        title="Not allowed",
        heading="Not allowed",
        paragraphs=[str(exception) or "You may not do this.", NOTHING_CHANGED],
    )


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    return _page(
        request,
        404,
        title="Not found",
        heading="Not found",
        paragraphs=[f"There is no page at {request.path}."],
    )


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return _page(
        request,
        403,
        title="Form expired",
        heading="This form has expired",
        paragraphs=[
            "Its security token no longer matches: the page was probably open while you "
            "signed in or out in another tab, or this browser blocks cookies.",
            NOTHING_CHANGED,
            "Reload the page and send the form again.",
        ],
        detail=reason,
    )


class MethodNotAllowedPage:
    """Django answers a method a view does not take (require_POST and friends) with an
    empty 405, which a browser shows as a blank page: give it words."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code != 405 or response.streaming or response.content:
            return response
        allowed = response.get("Allow", "")
        page = _page(
            request,
            405,
            title="Not here",
            heading="This address does not take that",
            paragraphs=[
                f"It answers {allowed or 'other methods'}, not {request.method}. "
                "Follow the links and buttons on the page instead.",
                NOTHING_CHANGED,
            ],
        )
        if allowed:
            page["Allow"] = allowed
        return page
