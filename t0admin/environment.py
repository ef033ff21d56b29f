"""Reading T0ADMIN_* and friends from the environment, with refusals in words.

Free of Django settings, so that gunicorn's configuration (t0admin.gunicorn_conf) reads
the same variables the same way as t0admin.settings does.
"""

from __future__ import annotations

import ipaddress
import os

from django.core.exceptions import ImproperlyConfigured

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def env_flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be 1 or 0, not {value!r}.")


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_networks(name: str, default: str = "") -> list[Network]:
    networks = []
    for item in env_list(name, default):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} must be comma-separated addresses or CIDRs (10.0.0.0/8), not {item!r}."
            ) from None
    return networks


def env_int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        words = "above 0" if minimum == 1 else f"of at least {minimum}"
        raise ImproperlyConfigured(f"{name} must be a whole number {words}, not {raw!r}.")
    return int(raw)


def trusted_proxies() -> list[Network]:
    """T0ADMIN_TRUSTED_PROXIES: none unless set. Trusting loopback by default let any
    local process forge X-Forwarded-For and sidestep the per-address sign-in lockout."""
    return env_networks("T0ADMIN_TRUSTED_PROXIES")
