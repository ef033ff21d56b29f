"""Trusting a reverse proxy, and only a trusted one.

Two jobs: forwarded headers (X-Forwarded-Proto, -Host, -For) count only when the request
comes from an address in T0ADMIN_TRUSTED_PROXIES; and with T0ADMIN_AUTH=proxy the user is
whoever the proxy names in T0ADMIN_PROXY_USER_HEADER, again only from a trusted address.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import auth
from django.contrib.auth.backends import RemoteUserBackend
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from keys import roles
from t0admin.auth import ModelBackend

log = logging.getLogger("t0admin.proxy")

FORWARDED_HEADERS = ("HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_FOR")
# Reachable without an identity: load balancers and container health checks.
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
# Django's username column; longer identities are refused rather than cut.
MAX_IDENTITY = 150


def meta_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


def is_trusted(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return False
    return any(ip in network for network in settings.TRUSTED_PROXIES)


def _address(hop: str) -> str | None:
    """An IP address from one X-Forwarded-For hop, or None: proxies also send `unknown`,
    `1.2.3.4:5678` and `[2001:db8::1]:443`."""
    hop = hop.strip()
    if hop.startswith("["):
        hop = hop[1:].partition("]")[0]
    elif hop.count(":") == 1:
        hop = hop.partition(":")[0]
    try:
        return str(ipaddress.ip_address(hop))
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str:
    """The address of the person, not of the proxy: the nearest untrusted hop.

    Used by django-axes to count failed sign-ins per client address. A hop that is no
    address at all ends the walk at the last address known for sure.
    """
    peer = request.META.get("REMOTE_ADDR", "")
    if not is_trusted(peer):
        return peer
    hops = [hop for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    nearest = peer
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return nearest
        if not is_trusted(address):
            return address
        nearest = address
    return nearest


def _refuse(request: HttpRequest, reason: str) -> HttpResponse:
    return render(
        request,
        "registration/proxy_refused.html",
        {"reason": reason, "header": settings.PROXY_USER_HEADER},
        status=403,
    )


class ForwardedHeadersMiddleware:
    """First in line: refuses a forged identity before anything else answers (even the
    https redirect), and drops forwarded headers that no trusted proxy vouches for.

    Django then honours what is left (SECURE_PROXY_SSL_HEADER, USE_X_FORWARDED_HOST).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        peer = request.META.get("REMOTE_ADDR", "")
        if is_trusted(peer):
            return self.get_response(request)
        for key in FORWARDED_HEADERS:
            request.META.pop(key, None)
        if settings.AUTH_MODE == "proxy" and (
            meta_key(settings.PROXY_USER_HEADER) in request.META
            or meta_key(settings.PROXY_GROUPS_HEADER) in request.META
        ):
            log.warning(
                "refused: %s header from untrusted address %s (not in "
                "T0ADMIN_TRUSTED_PROXIES) for %s",
                settings.PROXY_USER_HEADER,
                peer,
                request.path,
            )
            return _refuse(request, "untrusted")
        return self.get_response(request)


class ProxyAuthMiddleware:
    """With T0ADMIN_AUTH=proxy: the user named by the trusted proxy, or a refusal."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.AUTH_MODE != "proxy":
            return self.get_response(request)
        peer = request.META.get("REMOTE_ADDR", "")
        user_key = meta_key(settings.PROXY_USER_HEADER)
        groups_key = meta_key(settings.PROXY_GROUPS_HEADER)
        identity = request.META.get(user_key, "").strip()
        if not is_trusted(peer):
            # Forged identities were refused by ForwardedHeadersMiddleware already.
            if request.path_info in OPEN_PATHS:
                return self.get_response(request)
            return _refuse(request, "direct")
        if request.path_info in OPEN_PATHS and not identity:
            return self.get_response(request)
        if not identity:
            return _refuse(request, "anonymous")
        if len(identity) > MAX_IDENTITY:
            return _refuse(request, "too-long")

        username = identity.lower()
        if not (request.user.is_authenticated and request.user.get_username() == username):
            user = auth.authenticate(request, remote_user=identity)
            if user is None:
                return _refuse(request, "inactive")
            # A new identity through the same browser: a new session, never the old one.
            auth.login(request, user)
        groups = request.META.get(groups_key, "") if settings.PROXY_ADMIN_GROUPS else ""
        roles.sync_proxy_role(request.user, is_proxy_admin(username, groups))
        return self.get_response(request)


def is_proxy_admin(username: str, groups_header: str) -> bool:
    if "*" in settings.PROXY_ADMINS or username in settings.PROXY_ADMINS:
        return True
    groups = {group.strip() for group in groups_header.split(",") if group.strip()}
    return bool(groups & set(settings.PROXY_ADMIN_GROUPS))


class ProxyUserBackend(ModelBackend, RemoteUserBackend):
    """Users appear on first sight, named as the proxy names them (lowercased: e-mail
    addresses differ in case between identity providers, people do not). A session's
    user comes with their permissions, as with sign-in (t0admin.auth.ModelBackend)."""

    def clean_username(self, username: str) -> str:
        return username.strip().lower()

    def configure_user(self, request: HttpRequest | None, user: Any, created: bool = True) -> Any:
        if created and "@" in user.username:
            user.email = user.username
            user.save(update_fields=["email"])
        return user
