"""The /api-keys pages. Each view serves the full page and, for htmx, only its partial."""

from __future__ import annotations

import csv
import hmac
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.messages.storage.base import BaseStorage
from django.core import signing
from django.db import DatabaseError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.crypto import salted_hmac
from django.utils.dateparse import parse_datetime
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget
from django_htmx.middleware import HtmxDetails

from keys import gateway_probe, leaks, listing, rows, service, text, tokens, usage
from keys.forms import CreateKeyForm, DescriptionForm, LeakForm, RotateForm
from keys.models import ApiKey, AuditEvent
from keys.permissions import (
    can_view_audit,
    can_write,
    require_audit_viewer,
    require_viewer,
    require_writer,
)
from keys.templatetags.fixed_urls import fixed_url
from t0admin.compression import never_compress

AUDIT_PAGE = 100

KEYS_CHANGED = "keysChanged"  # htmx event: the list refreshes itself on it


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _render(
    request: HtmxHttpRequest,
    template: str,
    partial: str | None,
    context: dict[str, Any],
    status: int = 200,
) -> HttpResponse:
    """The full page, or for an htmx request only the named partial of it."""
    name = f"{template}#{partial}" if partial and request.htmx else template
    base = {"can_write": can_write(request), "api_keys_url": fixed_url("keys:list")}
    response = render(request, name, {**base, **context}, status=status)
    if request.method == "HEAD":
        # Nobody sees a HEAD's page (a monitor, curl -I): its one-time messages wait
        # for the next page that is shown.
        stored = messages.get_messages(request)
        if isinstance(stored, BaseStorage):
            stored.used = False
    return response


def _problem(request: HtmxHttpRequest, message: str, status: int) -> HttpResponse:
    response = _render(request, "keys/problem.html", "message", {"message": message}, status)
    if request.htmx and request.htmx.target != "modal-body":
        # In the dialog, as every error page is (t0admin/errors.py): swapped into the
        # element that asked (a table, the leak result), it would take that element's id
        # with it, and the next request would have nowhere to go.
        retarget(response, "#modal-body")
        reswap(response, "innerHTML")
    return response


def _list_request(request: HttpRequest) -> tuple[int, str, listing.Filters]:
    limit = listing.parse_limit(request.GET.get("limit"))
    query = listing.parse_query(request.GET.get("q"))
    filters = listing.parse_filters(request.GET.get("status"), request.GET.get("unused"))
    return limit, query, filters


@require_safe
@require_viewer
def key_list(request: HtmxHttpRequest) -> HttpResponse:
    try:
        limit, query, filters = _list_request(request)
    except listing.BadPageRequest as error:
        return _problem(request, str(error), 400)
    fresh = usage.refresh()
    if filters.unused_days and not fresh[0].ok:
        # Which keys are unused cannot be told: say so rather than list every key as stale.
        page = listing.Page([], None, None)
    else:
        try:
            page = listing.page(
                limit,
                before=request.GET.get("before"),
                after=request.GET.get("after"),
                query=query,
                filters=filters,
            )
        except listing.BadPageRequest as error:
            return _problem(request, str(error), 400)
    return _list(request, page, query, limit, request.get_full_path(), filters, fresh)


def _list(
    request: HtmxHttpRequest,
    page: listing.Page,
    query: str,
    limit: int,
    table_url: str,
    filters: listing.Filters = listing.Filters(),  # noqa: B008  frozen, never mutated
    fresh: tuple[usage.Availability, usage.Freshness | None] | None = None,
) -> HttpResponse:
    """The list page; `table_url` is where the table reloads itself from (keysChanged)."""
    keep: dict[str, int | str] = {"limit": limit} if limit != listing.DEFAULT_LIMIT else {}
    if query:
        keep["q"] = query
    keep.update(filters.params())
    available, current = fresh or usage.refresh()
    place = rows.place()  # where the rows go once the page is rendered (keys/rows.py)
    context = {
        "page": page,
        "query": query,
        "keep": "&" + urlencode(keep) if keep else "",
        "table_url": table_url,
        "filters": filters,
        "usage_available": available,
        "freshness": current,
        "last_used": _last_used(available, [key.public_id for key in page.keys]),
        # Counts cost a pass over the key table: computed here when a filter asks for
        # them anyway, else fetched by the page after it has shown (htmx), see key_counts.
        "counts": listing.counts(query) if filters.params() else None,
        "filter_base": _filter_base(query, limit),
        **FILTER_CHOICES,
        "rows_place": place,
    }
    response = _render(request, "keys/list.html", "table", context)
    return rows.splice(
        response,
        place,
        page.keys,
        can_write=can_write(request),
        api_keys_url=fixed_url("keys:list"),
        last_used=context["last_used"],
    )


def _last_used(available: usage.Availability, public_ids: list[str]) -> dict[str, Any] | None:
    """The rows' Last used cells; None: no such column (no observability tables)."""
    return usage.last_used(public_ids) if available.ok else None


FILTER_CHOICES = {
    "status_filters": [("active", "Active"), ("disabled", "Disabled"), ("expired", "Expired")],
    "unused_filters": listing.UNUSED_DAYS,
}


def _filter_base(query: str, limit: int) -> str:
    """The list's URL with the search and page size, to which a filter is added."""
    params: dict[str, str | int] = {"q": query} if query else {}
    if limit != listing.DEFAULT_LIMIT:
        params["limit"] = limit
    return fixed_url("keys:list") + "?" + urlencode(params) + ("&" if params else "")


@require_safe
@require_viewer
def key_counts(request: HtmxHttpRequest) -> HttpResponse:
    """The filter bar with its counts, for the list to fetch once it has shown."""
    try:
        limit, query, filters = _list_request(request)
    except listing.BadPageRequest as error:
        return _problem(request, str(error), 400)
    available, _ = usage.refresh()
    context = {
        "filters": filters,
        "counts": listing.counts(query),
        "usage_available": available,
        "filter_base": _filter_base(query, limit),
        "query": query,
        **FILTER_CHOICES,
    }
    return _render(request, "keys/list.html", "filters", context)


@sensitive_post_parameters("query")
@sensitive_variables("query", "parsed")
@require_POST
@require_viewer
def find_key(request: HtmxHttpRequest) -> HttpResponse:
    """The Find box. It posts, so that a pasted key never lands in a URL or a log: a whole
    key is checked here as the gateway would; anything else becomes a search."""
    query = request.POST.get("query", "").strip()
    if not tokens.may_hold_secret(query):
        try:
            query = listing.parse_query(query)
        except listing.BadPageRequest as error:
            return _problem(request, str(error), 400)
        target = reverse("keys:list") + (f"?{urlencode({'q': query})}" if query else "")
        if tokens.is_public_id(query) and ApiKey.objects.filter(public_id=query).exists():
            # An exact public ID: the one key, answered here rather than by a redirect
            # and a second request. A public ID is no secret; the table reloads from
            # the search's own URL.
            page = listing.page(listing.DEFAULT_LIMIT, query=query)
            return _list(request, page, query, listing.DEFAULT_LIMIT, target)
        return redirect(target)
    if len(leaks.extract(query)) > 1:
        return _check_leak(request, query, LeakForm())  # a leak: the leaked keys page's answer
    # Whatever surrounds it (Bearer, export …=, quotes), the key inside is what counts;
    # text that may hold a secret is never turned into a search URL.
    parsed = tokens.extract(query)
    if parsed is None:
        return _problem(
            request,
            "That looks like part of a secret, so it was not searched for. Paste the whole "
            "key (sk-t0-, 12 letters or digits, -, 48 more) or its 48-character secret part.",
            400,
        )
    if parsed.public_id:
        api_key = ApiKey.objects.filter(public_id=parsed.public_id).first()
    else:
        # The secret part alone: found by its hash, one sequential scan (no index there).
        api_key = ApiKey.objects.filter(hash=parsed.hash).first()
    genuine = api_key is not None and hmac.compare_digest(api_key.hash, parsed.hash)
    context = {
        "public_id": parsed.public_id or (api_key.public_id if api_key else ""),
        "key": api_key,
        "genuine": genuine,
        "secret_only": not parsed.public_id,
        "keys": [api_key] if api_key else [],
    }
    response = _render(request, "keys/find.html", None, context)
    add_never_cache_headers(response)
    return response


@sensitive_variables("created")
@require_http_methods(["GET", "POST"])
@require_writer
def new_key(request: HtmxHttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _render(request, "keys/new.html", "form", {"form": CreateKeyForm()})
    form = CreateKeyForm(request.POST)
    if not form.is_valid():
        return _render(request, "keys/new.html", "form", {"form": form}, status=400)
    try:
        created = service.create_key(
            actor=request.user.get_username(),
            description=form.cleaned_data["description"],
            expires_at=form.cleaned_data["expires_at"],
            form_token=form.cleaned_data["form_token"],
        )
    except service.AlreadySubmitted as error:
        return _problem(request, str(error), 409)
    except service.ServiceError as error:
        form.add_error(None, str(error))
        return _render(request, "keys/new.html", "form", {"form": form}, status=400)
    return _show_secret(request, created)


@sensitive_variables("created")
def _show_secret(
    request: HtmxHttpRequest, created: service.CreatedKey, old: ApiKey | None = None
) -> HttpResponse:
    """The one response that ever holds a secret: the POST's own, never cached, never a
    redirect (the secret would have to travel through the session or the URL)."""
    context = {"created": created, "old": old, "gateway_url": settings.GATEWAY_URL}
    response = _render(request, "keys/created.html", "created", context)
    add_never_cache_headers(response)
    never_compress(response)  # README: "Compression and BREACH"
    response["HX-Trigger"] = KEYS_CHANGED
    return response


KeyView = Callable[[HtmxHttpRequest, ApiKey], HttpResponse]


def with_key(view: KeyView) -> Callable[[HtmxHttpRequest, str], HttpResponse]:
    """Resolve the URL's public ID to its key, or answer 404 in words."""

    @wraps(view)
    def wrapped(request: HtmxHttpRequest, public_id: str) -> HttpResponse:
        try:
            api_key = service.get_key(public_id)
        except service.KeyNotFound as error:
            return _problem(request, str(error), 404)
        return view(request, api_key)

    return wrapped


@require_http_methods(["GET", "POST"])
@require_writer
@with_key
def disable_key(request: HtmxHttpRequest, api_key: ApiKey) -> HttpResponse:
    public_id = api_key.public_id
    if request.method == "GET":
        return _render(request, "keys/disable.html", "confirm", {"key": api_key})
    api_key, changed = service.disable_key(actor=request.user.get_username(), public_id=public_id)
    if changed:
        message = (
            f"API key {public_id} is disabled. Gateways stop accepting it within their "
            "auth cache TTL (1 second by default)."
        )
    else:
        message = f"API key {public_id} was already disabled; nothing changed."
    if request.htmx:
        response = _render(request, "keys/disable.html", "done", {"message": message})
        response["HX-Trigger"] = KEYS_CHANGED
        return response
    (messages.success if changed else messages.info)(request, message)
    return redirect("keys:list")


@require_POST
@require_writer
def disable_selected(request: HtmxHttpRequest) -> HttpResponse:
    """Disable the keys ticked on the list: first a confirmation naming them, then one
    transaction for all."""
    wanted = list(dict.fromkeys(request.POST.getlist("public_id")))
    if not wanted:
        return _problem(request, "Tick the keys to disable first.", 400)
    if len(wanted) > service.MAX_BULK or not all(map(tokens.is_public_id, wanted)):
        return _problem(
            request, f"Select up to {service.MAX_BULK:,} keys by their public IDs.", 400
        )
    if request.POST.get("confirmed") != "yes":
        keys = list(ApiKey.objects.filter(public_id__in=wanted, disabled_at__isnull=True))
        if not keys:
            return _problem(request, "The selected keys are disabled already.", 409)
        return _render(request, "keys/disable_selected.html", "confirm", {"keys": keys})
    result = service.disable_keys(actor=request.user.get_username(), public_ids=wanted)
    message = f"{len(result.disabled)} API key{'s' if len(result.disabled) != 1 else ''} disabled"
    if result.disabled:
        message += f" ({', '.join(result.disabled)})"
    message += ". Gateways stop accepting them within their auth cache TTL (1 second by default)."
    if result.already:
        message += f" Already disabled, unchanged: {', '.join(result.already)}."
    if result.meanwhile:
        message += f" Disabled meanwhile by another change: {', '.join(result.meanwhile)}."
    if result.held:
        message += (
            f" NOT disabled: {', '.join(result.held)}. Another change held "
            f"{'them' if len(result.held) > 1 else 'it'} for longer than t0admin waits (another "
            "admin's change, or a long transaction on the database); disable "
            f"{'them' if len(result.held) > 1 else 'it'} again."
        )
    if request.htmx:
        response = _render(request, "keys/disable.html", "done", {"message": message})
        response["HX-Trigger"] = KEYS_CHANGED
        return response
    (messages.warning if result.held else messages.success)(request, message)
    return redirect("keys:list")


@sensitive_variables("rotation")
@require_http_methods(["GET", "POST"])
@require_writer
@with_key
def rotate_key(request: HtmxHttpRequest, api_key: ApiKey) -> HttpResponse:
    public_id = api_key.public_id
    if request.method == "GET":
        refusal = service.rotation_refusal(api_key)
        if refusal:
            return _problem(request, refusal, 409)
        # From the Leaked keys page: ?incident= tags the rotation with that leak response.
        incident = request.GET.get("incident", "")
        if incident and not service.INCIDENT.fullmatch(incident):
            return _problem(
                request, "This is not an incident reference from the Leaked keys page.", 400
            )
        form = RotateForm(initial={"incident": incident})
        return _render(request, "keys/rotate.html", "confirm", {"key": api_key, "form": form})
    # On POST the service decides, under its lock, and a form sent twice hears so first.
    form = RotateForm(request.POST)
    if not form.is_valid():
        context = {"key": api_key, "form": form}
        return _render(request, "keys/rotate.html", "confirm", context, status=400)
    try:
        rotation = service.rotate_key(
            actor=request.user.get_username(),
            public_id=public_id,
            grace=form.grace_period(),
            form_token=form.cleaned_data["form_token"],
            incident=form.cleaned_data["incident"],
        )
    except service.ServiceError as error:
        return _problem(request, str(error), 409)
    return _show_secret(request, rotation.created, old=rotation.old)


@require_http_methods(["GET", "POST"])
@require_writer
@with_key
def edit_description(request: HtmxHttpRequest, api_key: ApiKey) -> HttpResponse:
    public_id = api_key.public_id
    # Opened as a page of its own (from the key's page, a new tab, or a sign-in that
    # returned here), the form posts as a plain form and goes back where it came from;
    # opened from a row of the list (htmx), it replaces that row.
    back = "key" if request.GET.get("back", request.POST.get("back")) == "key" else ""
    back_url = reverse("keys:detail", args=[public_id]) if back else reverse("keys:list")
    page = {"key": api_key, "back": back, "back_url": back_url}
    if request.method == "GET":
        # was: what the form started from, so that saving cannot overwrite, unseen, a change
        # someone else made meanwhile (service.DescriptionChanged).
        start = service.edited_from(api_key.description)
        form = DescriptionForm(initial={"description": start})
        context = {**page, "form": form, "was": start}
        response = _render(request, "keys/edit.html", "edit_row", context)
        if request.htmx:
            # The row's link carries no htmx attributes (the tbody's send it to the
            # dialog): the form replaces the row it was opened from.
            retarget(response, f"#key-{public_id}")
            reswap(response, "outerHTML")
        return response
    form = DescriptionForm(request.POST)
    was = request.POST.get("was")  # absent (an older page, a script): no check
    if not form.is_valid():
        context = {**page, "form": form, "was": was}
        return _render(request, "keys/edit.html", "edit_row", context, status=400)
    try:
        api_key = service.set_description(
            actor=request.user.get_username(),
            public_id=public_id,
            description=form.cleaned_data["description"],
            was=was,
        )
    except service.DescriptionChanged as changed:
        # The editor's text stays in the box; saving again replaces what is there now.
        form.add_error("description", str(changed))
        now = changed.api_key
        context = {**page, "key": now, "form": form, "was": service.edited_from(now.description)}
        return _render(request, "keys/edit.html", "edit_row", context, status=409)
    if request.htmx:
        last_used = _last_used(usage.availability(), [public_id])
        return _render(
            request, "keys/list.html", "rows", {"keys": [api_key], "last_used": last_used}
        )
    messages.success(request, f"Description of API key {public_id} saved.")
    return redirect(back_url)


class BadFilter(ValueError):
    """An audit filter the user can correct; str() says how."""


# ?name=value: (the field it filters, what a valid value is, the words when it is not).
AUDIT_FILTERS: dict[str, tuple[str, Callable[[str], bool], str]] = {
    "key": ("public_id", tokens.is_public_id, "key must be a 12-character public ID."),
    "actor": ("actor", lambda v: len(v) <= 255, "actor can be at most 255 characters."),
    "action": (
        "action",
        lambda v: v in AuditEvent.Action.values,
        f"action must be one of {', '.join(AuditEvent.Action.values)}.",
    ),
    "reason": (
        "reason",
        lambda v: v in AuditEvent.Reason.values,
        f"reason must be one of {', '.join(AuditEvent.Reason.values)}.",
    ),
    "incident": ("incident", lambda v: len(v) <= 64, "incident can be at most 64 characters."),
}


def _audit_filters(request: HtmxHttpRequest) -> tuple[QuerySet[AuditEvent], dict[str, str]]:
    """The audit records the query string asks for, newest first, and the filters kept."""
    events = AuditEvent.objects.order_by("-id")
    kept: dict[str, str] = {}
    for name, (field, valid, message) in AUDIT_FILTERS.items():
        value = request.GET.get(name, "").strip()
        if value:
            if "\x00" in value:  # PostgreSQL's text cannot hold one: no record has it
                raise BadFilter(f"{name} cannot contain NUL bytes.")
            if not valid(value):
                raise BadFilter(message)
            events = events.filter(**{field: value})
            kept[name] = value
    return events, kept


@require_safe
@require_audit_viewer
def audit_trail(request: HtmxHttpRequest) -> HttpResponse:
    """Who did what to which key, newest first; filtered by key, actor, action, reason or
    incident."""
    try:
        events, kept = _audit_filters(request)
    except BadFilter as error:
        return _problem(request, str(error), 400)
    before = request.GET.get("before", "")
    if before:
        if not (before.isascii() and before.isdigit()):
            return _problem(request, "before must be an event number from this page.", 400)
        events = events.filter(id__lt=int(before))
    found = list(events[: AUDIT_PAGE + 1])
    context = {
        "events": found[:AUDIT_PAGE],
        "next_before": found[AUDIT_PAGE - 1].id if len(found) > AUDIT_PAGE else None,
        "key": kept.get("key", ""),
        "filters": kept,
        "keep": "&" + urlencode(kept) if kept else "",
        "export_query": urlencode(kept),
        "actions": AuditEvent.Action.choices,
        "reasons": AuditEvent.Reason.choices,
    }
    return _render(request, "keys/audit.html", "events", context)


def parse_since(raw: str | None) -> datetime | None:
    """?since=: an ISO date and time; without an offset, in the viewer's time zone."""
    if not raw:
        return None
    text = raw.strip()
    candidates = [text]
    if " " in text:  # a "+01:00" offset sent unencoded arrives as " 01:00"
        head, _, tail = text.rpartition(" ")
        candidates.append(f"{head}+{tail}")
    for candidate in candidates:
        try:
            parsed = parse_datetime(candidate)
        except ValueError:
            parsed = None
        if parsed is not None:
            if timezone.is_naive(parsed):
                parsed = timezone.make_aware(parsed)
            # Hours are counted around it: the first and last years cannot be.
            if not SINCE_FROM <= parsed < SINCE_UNTIL:
                raise ValueError("since must be between the years 1970 and 8999.")
            return parsed
    raise ValueError(
        "since must be a date and time such as 2026-11-27T09:30 or 2026-11-27T09:30:00Z."
    )


SINCE_FROM = datetime(1970, 1, 1, tzinfo=UTC)
SINCE_UNTIL = datetime(9000, 1, 1, tzinfo=UTC)


RATE_RULE = """[[rate_limiting.rules]]
# Only for API key {public_id}; adjust the limits, then reload the gateway.
model_inferences_per_minute = 60
tokens_per_minute = 100000
priority = 1
scope = [{{ api_key_public_id = "{public_id}" }}]"""


def _rotation_links(public_id: str) -> tuple[AuditEvent | None, AuditEvent | None]:
    """The rotation that replaced this key, and the one that made it (if any)."""
    rotations = AuditEvent.objects.filter(action=AuditEvent.Action.ROTATE)
    replaced = rotations.filter(public_id=public_id).order_by("-id").first()
    made_by = rotations.filter(detail__replaced_by=public_id).order_by("-id").first()
    return replaced, made_by


@require_safe
@require_viewer
def key_detail(request: HtmxHttpRequest, public_id: str) -> HttpResponse:
    """Everything t0admin knows about one key, and what it did."""
    if request.htmx.boosted:
        # A row's Details link, which the list's rows send to the dialog like every row
        # link: this is a page of its own, with its own URL.
        return HttpResponseClientRedirect(request.get_full_path())
    try:
        api_key = service.get_key(public_id)
        since = parse_since(request.GET.get("since"))
    except service.KeyNotFound as error:
        return _problem(request, str(error), 404)
    except ValueError as error:
        return _problem(request, str(error), 400)
    available, current = usage.refresh()
    key_usage = None
    if available.ok and current is not None:
        try:
            key_usage = usage.key_usage(
                api_key.public_id, available, current, since, api_key.disabled_at
            )
        except DatabaseError as error:
            usage.forget_availability()  # the tables may have gone: the next page looks
            usage.log.warning("key usage unreadable: %s", str(error).strip().splitlines()[:1])
            available = usage.Availability(usage.UNREADABLE)
    replaced, made_by = _rotation_links(api_key.public_id)
    events = (
        list(AuditEvent.objects.filter(public_id=api_key.public_id).order_by("-id")[:AUDIT_PAGE])
        if can_view_audit(request)
        else None
    )
    context = {
        "key": api_key,
        "status": api_key.status(),
        "since": since,
        "since_value": timezone.localtime(since).strftime("%Y-%m-%dT%H:%M") if since else "",
        "usage": key_usage,
        "usage_available": available,
        "freshness": current,
        "ttl_ms": settings.GATEWAY_AUTH_CACHE_TTL_MS,
        "ui_url": settings.TENSORZERO_UI_URL,
        "replaced": replaced,
        "made_by": made_by,
        "events": events,
        "rate_rule": RATE_RULE.format(public_id=api_key.public_id),
    }
    return _render(request, "keys/key.html", "usage", context)


AUDIT_COLUMNS = ["at", "actor", "action", "public_id", "reason", "incident", "detail"]
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP: CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _audit_record(event: AuditEvent) -> dict[str, Any]:
    return {
        "at": event.at.isoformat(),
        "actor": event.actor,
        "action": event.action,
        "public_id": event.public_id,
        "reason": event.reason,
        "incident": event.incident,
        # Another tool may have stored a key in a description: never into a file.
        "detail": {
            name: text.hide_secrets(value) if isinstance(value, str) else value
            for name, value in (event.detail or {}).items()
        },
    }


class _Line:
    """csv.writer's file: hands back each row it writes instead of keeping it."""

    def write(self, value: str) -> str:
        return value


@require_safe
@require_audit_viewer
def audit_export(request: HtmxHttpRequest) -> HttpResponse | StreamingHttpResponse:
    """The filtered audit trail as CSV or JSON lines, streamed: any length, little memory."""
    try:
        events, kept = _audit_filters(request)
    except BadFilter as error:
        return _problem(request, str(error), 400)
    kind = request.GET.get("format", "csv")
    if kind not in {"csv", "jsonl"}:
        return _problem(request, "format must be csv or jsonl.", 400)
    records = (_audit_record(e) for e in events.iterator(chunk_size=2000))
    if kind == "csv":
        writer = csv.writer(_Line())
        lines: Iterator[str] = itertools.chain(
            [writer.writerow(AUDIT_COLUMNS)],
            (
                writer.writerow(
                    [
                        _csv_cell(json.dumps(r[c]) if c == "detail" else str(r[c]))
                        for c in AUDIT_COLUMNS
                    ]
                )
                for r in records
            ),
        )
        content_type = "text/csv; charset=utf-8"
    else:
        lines = (json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        content_type = "application/x-ndjson; charset=utf-8"
    response = StreamingHttpResponse(lines, content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="t0admin-audit-{stamp}.{kind}"'
    return response


# --- Leaked keys: a paste of any text, every key in it, disable them all --------------

LEAK_SALT = "keys.leaked"
LEAK_CONFIRM_SECONDS = 3600  # a confirmation older than this is refused: check again


@dataclass
class LeakRow:
    """One distinct key of a paste, as shown: never its secret."""

    public_id: str
    state: str  # a leaks.State value
    since: datetime | None = None
    real_state: str | None = None  # for a string that is not a working key
    outcome: str = ""  # what "Disable all" did to it
    answer: gateway_probe.Answer | None = None
    carry: str = ""  # names the key in the refusals Find keys again carries (_carry_label)

    @property
    def label(self) -> str:
        return leaks.State(self.state).label


def _leak_rows(classified: list[leaks.Classified]) -> list[LeakRow]:
    return [
        LeakRow(c.public_id, c.state.value, c.since, c.real_state if c.api_key else None)
        for c in classified
    ]


def _leak_token(rows: list[LeakRow], incident: str, since: datetime) -> str:
    """What the Disable all form carries back: public IDs and states, signed so that the
    confirmation can only disable what was found active. Never a secret."""
    payload = {
        "i": incident,
        "s": since.isoformat(),
        "r": [
            [r.public_id, r.state, r.since.isoformat() if r.since else None, r.real_state]
            for r in rows
        ],
    }
    return signing.dumps(payload, salt=LEAK_SALT, compress=True)


def _read_leak_token(token: str) -> tuple[str, datetime, list[LeakRow]]:
    payload = signing.loads(token, salt=LEAK_SALT, max_age=LEAK_CONFIRM_SECONDS)
    rows = [
        LeakRow(public_id, state, datetime.fromisoformat(since) if since else None, real)
        for public_id, state, since, real in payload["r"]
    ]
    return payload["i"], datetime.fromisoformat(payload["s"]), rows


def _leak_text(request: HtmxHttpRequest, name: str) -> str | HttpResponse:
    """The pasted text, or the 413 that says it is too long."""
    pasted = request.POST.get(name, "")
    # Counted as pasted: a browser sends every line break of a text area as CR LF, which
    # put a paste of 15,400 keys (1,047,199 bytes) over the limit as 1,062,598.
    size = len(pasted.replace("\r\n", "\n").encode("utf-8", "surrogatepass"))
    if size > leaks.MAX_TEXT_BYTES:
        return _problem(
            request,
            f"The pasted text is {size:,} bytes; the page takes at most "
            f"{leaks.MAX_TEXT_BYTES:,} (1 MB). Split it into parts, or run manage.py "
            "find_leaked_keys on the file, which reads any size.",
            413,
        )
    return pasted


REFUSED_SALT = "keys.leaked.refused"


@sensitive_variables("found", "value")
def _carry_label(found: leaks.Classified) -> str:
    """A key and what it is here, as the carried refusals name it: a keyed digest, so
    that the exact string is matched (two mistyped copies of one key share a public ID
    and a state) and nothing of the secret leaves."""
    value = f"{found.secret} {found.state.value}"
    return salted_hmac(REFUSED_SALT, value, algorithm="sha256").hexdigest()[:16]


def _refused_token(report: gateway_probe.Report | None, rows: list[LeakRow]) -> str:
    """When a check left keys unanswered: which keys the gateway refused (now or in the
    check before), and when, signed, for the next check to skip. Find keys again then
    goes on with the rest, however big the paste and slow the gateway."""
    if report is None or not report.unanswered:
        return ""
    now = timezone.now()
    refused: dict[str, list[str]] = {}
    for row in rows:
        if row.carry and row.answer and row.answer.verdict is gateway_probe.Verdict.REFUSED:
            refused.setdefault((row.answer.earlier or now).isoformat(), []).append(row.carry)
    return signing.dumps(refused, salt=REFUSED_SALT, compress=True) if refused else ""


def _read_refused(token: str) -> dict[str, datetime]:
    """The previous checks' refusals of the last hour, by _carry_label; an expired,
    altered or missing token: none (every key is asked)."""
    try:
        refused = signing.loads(token, salt=REFUSED_SALT, max_age=LEAK_CONFIRM_SECONDS)
        times = {
            label: datetime.fromisoformat(at) for at, labels in refused.items() for label in labels
        }
    except (signing.BadSignature, ValueError, AttributeError, TypeError):
        return {}
    oldest = timezone.now() - timedelta(seconds=LEAK_CONFIRM_SECONDS)
    return {label: at for label, at in times.items() if at.tzinfo and at >= oldest}


def _probe_rows(
    rows: list[LeakRow], found: list[leaks.Classified], refused: dict[str, datetime] | None = None
) -> gateway_probe.Report:
    """Ask the gateway about every key found; rows and found are in the same order. A key
    that the previous check saw refused, and that is still the same dead key here, is not
    asked again."""
    refused = refused or {}
    carried: list[datetime | None] = []
    for row, c in zip(rows, found, strict=True):
        row.carry = _carry_label(c)
        carried.append(refused.get(row.carry) if c.state is not leaks.State.ACTIVE else None)
    ask = [c for c, earlier in zip(found, carried, strict=True) if earlier is None]
    report = gateway_probe.probe(
        [c.secret for c in ask], [c.state is not leaks.State.ACTIVE for c in ask]
    )
    if report.error:
        return report
    answers = iter(report.answers)
    report.answers = [
        gateway_probe.Answer(gateway_probe.Verdict.REFUSED, 401, earlier=earlier)
        if earlier
        else next(answers)
        for earlier in carried
    ]
    for row, answer in zip(rows, report.answers, strict=True):
        row.answer = answer
    return report


def _leak_page(
    request: HtmxHttpRequest,
    rows: list[LeakRow],
    *,
    form: LeakForm,
    incident: str,
    since: datetime,
    report: gateway_probe.Report | None = None,
    disabled: service.BulkDisable | None = None,
    held: int = 0,
    not_probed: str = "",
    status: int = 200,
) -> HttpResponse:
    active = [r for r in rows if r.state == leaks.State.ACTIVE]
    context = {
        "form": form,
        "rows": rows,
        "active": active,
        # "2 active, 1 unknown": the states present, in the order of leaks.State.
        "counts": [
            f"{count} {state.label}"
            for state in leaks.State
            if (count := sum(r.state == state for r in rows))
        ],
        "forged": any(r.state == leaks.State.NOT_A_KEY for r in rows),
        "incident": incident,
        "since": since,
        "token": _leak_token(rows, incident, since) if active else "",
        "report": report,
        "carried": sum(bool(r.answer and r.answer.earlier) for r in rows),
        "refused_token": _refused_token(report, rows),
        "disabled": disabled,
        "held": held,  # keys that Disable all could not take, still active
        "not_probed": not_probed,
        "gateway_configured": gateway_probe.configured_url() is not None,
        "not_configured": gateway_probe.NOT_CONFIGURED,
        "checked": True,
    }
    response = _render(request, "keys/leaked.html", "result", context, status)
    add_never_cache_headers(response)
    return response


@sensitive_post_parameters("text", "query")
@sensitive_variables("text", "found", "classified")
@require_http_methods(["GET", "POST"])
@require_viewer
def leaked_keys(request: HtmxHttpRequest) -> HttpResponse:
    """Paste any text: every key in it, what each is now, and Disable all."""
    if request.method == "GET":
        context = {"form": LeakForm(initial={"probe": True}), "checked": False}
        context["gateway_configured"] = gateway_probe.configured_url() is not None
        context["not_configured"] = gateway_probe.NOT_CONFIGURED
        response = _render(request, "keys/leaked.html", None, context)
        add_never_cache_headers(response)
        return response
    form = LeakForm(request.POST)
    pasted = _leak_text(request, "text")
    if isinstance(pasted, HttpResponse):
        return pasted
    if not form.is_valid():
        return _problem(
            request, " ".join(str(e) for errors in form.errors.values() for e in errors), 400
        )
    if not pasted.strip():
        return _problem(request, "Paste the text that holds the leaked keys first.", 400)
    return _check_leak(request, pasted, form)


@sensitive_variables("text", "found", "classified")
def _check_leak(request: HtmxHttpRequest, pasted: str, form: LeakForm) -> HttpResponse:
    """Classify the keys in `pasted` and show them: the leak page's answer, also the Find
    box's when a paste holds more than one key."""
    classified = leaks.classify(leaks.extract(pasted))
    rows = _leak_rows(classified)
    since = (form.cleaned_data.get("since") if form.is_bound else None) or timezone.now()
    report = None
    not_probed = ""
    if classified and form.is_bound and form.cleaned_data.get("probe"):
        if gateway_probe.configured_url() is None:
            not_probed = gateway_probe.NOT_CONFIGURED
        else:
            report = _probe_rows(rows, classified, _read_refused(request.POST.get("refused", "")))
    return _leak_page(
        request,
        rows,
        form=form,
        incident=service.new_incident(),
        since=since,
        report=report,
        not_probed=not_probed,
    )


@sensitive_post_parameters("text")
@sensitive_variables("text", "found", "classified")
@require_POST
@require_writer
def disable_leaked(request: HtmxHttpRequest) -> HttpResponse:
    """Disable all active keys of a paste: first a confirmation naming them, then one
    transaction, then (with a gateway configured) the gateway's own answer per key."""
    try:
        incident, since, rows = _read_leak_token(request.POST.get("token", ""))
    except (signing.BadSignature, ValueError, KeyError, TypeError):
        return _problem(
            request,
            "This confirmation has expired or was altered. Paste the text again to check "
            "the keys afresh.",
            400,
        )
    active = [r.public_id for r in rows if r.state == leaks.State.ACTIVE]
    if request.POST.get("confirmed") != "yes":
        context = {"active": active, "token": request.POST["token"], "incident": incident}
        return _render(request, "keys/leaked_confirm.html", "confirm", context)
    pasted = _leak_text(request, "text")
    if isinstance(pasted, HttpResponse):
        return pasted
    result = service.disable_keys(
        actor=request.user.get_username(), public_ids=active, reason="leaked", incident=incident
    )
    report = None
    not_probed = ""
    classified = leaks.classify(leaks.extract(pasted)) if pasted else []
    if classified:
        # The browser sent the paste again (it never left the page): show each key as it is
        # now, and ask the gateway with each.
        rows = _leak_rows(classified)
    if gateway_probe.configured_url() is None:
        not_probed = gateway_probe.NOT_CONFIGURED
    elif classified:
        report = _probe_rows(rows, classified)
    else:
        not_probed = (
            "The gateway was not asked: t0admin never sends a pasted text back to the "
            "browser, so without JavaScript it does not have the keys any more. Paste the "
            "text again with “Ask the gateway too” ticked to have each key checked."
        )
    genuine = {leaks.State.ACTIVE.value, leaks.State.DISABLED.value}
    asked = set(active)  # up to 100,000 keys: not a list lookup per row
    for row in rows:
        if row.public_id in asked and row.state in genuine:
            outcome, at = result.outcome(row.public_id)
            if outcome == service.HELD and row.state == leaks.State.DISABLED.value:
                outcome = service.MEANWHILE  # its holder disabled it since (read again above)
            row.outcome, row.since = outcome, at or row.since
            if outcome != service.HELD and result.is_off(row.public_id):
                row.state = leaks.State.DISABLED.value
    return _leak_page(
        request,
        rows,
        form=LeakForm(),
        incident=incident,
        since=since,
        report=report,
        disabled=result,
        held=sum(row.outcome == service.HELD for row in rows),
        not_probed=not_probed,
    )
