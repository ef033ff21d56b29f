"""The /api-keys pages. Each view serves the full page and, for htmx, only its partial."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.dateparse import parse_datetime
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.middleware import HtmxDetails

from keys import listing, service, text, tokens, usage
from keys.forms import CreateKeyForm, DescriptionForm, RotateForm
from keys.models import ApiKey, AuditEvent
from keys.permissions import (
    can_view_audit,
    can_write,
    require_audit_viewer,
    require_viewer,
    require_writer,
)

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
    base = {"can_write": can_write(request), "api_keys_url": reverse("keys:list")}
    return render(request, name, {**base, **context}, status=status)


def _problem(request: HtmxHttpRequest, message: str, status: int) -> HttpResponse:
    return _render(request, "keys/problem.html", "message", {"message": message}, status)


def _list_request(request: HttpRequest) -> tuple[int, str, listing.Filters]:
    limit = listing.parse_limit(request.GET.get("limit"))
    query = listing.parse_query(request.GET.get("q"))
    filters = listing.parse_filters(request.GET.get("status"), request.GET.get("unused"))
    return limit, query, filters


@require_GET
@require_viewer
def key_list(request: HtmxHttpRequest) -> HttpResponse:
    try:
        limit, query, filters = _list_request(request)
    except listing.BadPageRequest as error:
        return _problem(request, str(error), 400)
    available, current = usage.refresh()
    if filters.unused_days and not available.ok:
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
    keep: dict[str, int | str] = {"limit": limit} if limit != listing.DEFAULT_LIMIT else {}
    if query:
        keep["q"] = query
    last_used = usage.last_used([key.public_id for key in page.keys]) if available.ok else {}
    for key in page.keys:
        key.last_used = last_used.get(key.public_id)  # type: ignore[attr-defined]
    context = {
        "page": page,
        "query": query,
        "filters": filters,
        "usage_available": available,
        "freshness": current,
        # Counts cost a pass over the key table: computed here when a filter asks for
        # them anyway, else fetched by the page after it has shown (htmx), see key_counts.
        "counts": listing.counts(query) if filters.params() else None,
        "filter_base": _filter_base(query, limit),
        **FILTER_CHOICES,
        "keep": "&" + urlencode({**keep, **filters.params()}) if keep or filters.params() else "",
    }
    return _render(request, "keys/list.html", "table", context)


FILTER_CHOICES = {
    "status_filters": [("active", "Active"), ("disabled", "Disabled"), ("expired", "Expired")],
    "unused_filters": listing.UNUSED_DAYS,
}


def _filter_base(query: str, limit: int) -> str:
    """The list's URL with the search and page size, to which a filter is added."""
    params: dict[str, str | int] = {"q": query} if query else {}
    if limit != listing.DEFAULT_LIMIT:
        params["limit"] = limit
    return reverse("keys:list") + "?" + urlencode(params) + ("&" if params else "")


@require_GET
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
        return redirect(target)
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
        return _render(
            request, "keys/rotate.html", "confirm", {"key": api_key, "form": RotateForm()}
        )
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
        )
    except service.ServiceError as error:
        return _problem(request, str(error), 409)
    return _show_secret(request, rotation.created, old=rotation.old)


@require_http_methods(["GET", "POST"])
@require_writer
@with_key
def edit_description(request: HtmxHttpRequest, api_key: ApiKey) -> HttpResponse:
    public_id = api_key.public_id
    if request.method == "GET":
        form = DescriptionForm(initial={"description": text.editable(api_key.description)})
        return _render(request, "keys/edit.html", "edit_row", {"key": api_key, "form": form})
    form = DescriptionForm(request.POST)
    if not form.is_valid():
        context = {"key": api_key, "form": form}
        return _render(request, "keys/edit.html", "edit_row", context, status=400)
    api_key = service.set_description(
        actor=request.user.get_username(),
        public_id=public_id,
        description=form.cleaned_data["description"],
    )
    if request.htmx:
        return _render(request, "keys/list.html", "row", {"key": api_key})
    messages.success(request, f"Description of API key {public_id} saved.")
    return redirect("keys:list")


@require_GET
@require_audit_viewer
def audit_trail(request: HtmxHttpRequest) -> HttpResponse:
    """Who did what to which key, newest first; `?key=` narrows it to one key."""
    events = AuditEvent.objects.order_by("-id")
    key = request.GET.get("key", "").strip()
    if key:
        if not tokens.is_public_id(key):
            return _problem(request, "key must be a 12-character public ID.", 400)
        events = events.filter(public_id=key)
    before = request.GET.get("before", "")
    if before:
        if not (before.isascii() and before.isdigit()):
            return _problem(request, "before must be an event number from this page.", 400)
        events = events.filter(id__lt=int(before))
    rows = list(events[: AUDIT_PAGE + 1])
    context = {
        "events": rows[:AUDIT_PAGE],
        "next_before": rows[AUDIT_PAGE - 1].id if len(rows) > AUDIT_PAGE else None,
        "key": key,
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
            return parsed
    raise ValueError(
        "since must be a date and time such as 2026-11-27T09:30 or 2026-11-27T09:30:00Z."
    )


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


@require_GET
@require_viewer
def key_detail(request: HtmxHttpRequest, public_id: str) -> HttpResponse:
    """Everything t0admin knows about one key, and what it did."""
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
