"""Small helpers that read configuration from the environment.

A bad value raises ``ImproperlyConfigured`` naming the variable, so a typo in
production fails at start-up instead of at the first request.
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on", "t", "y"}
_FALSE = {"0", "false", "no", "off", "f", "n", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be >= {minimum}, got {value}")
    return value


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_seconds_list(name: str, default: list[float]) -> list[float]:
    """Comma-separated non-negative numbers of seconds, checked now."""
    items = env_list(name, [str(value) for value in default])
    try:
        values = [float(item) for item in items]
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be comma-separated seconds, got {os.environ.get(name)!r}") from None
    if any(value < 0 or value != value for value in values):
        raise ImproperlyConfigured(f"{name} must not hold negative numbers")
    return values


def env_networks(name: str, default: list[str] | None = None) -> list[str]:
    """Comma-separated IP addresses or CIDR ranges, checked now; the list of texts."""
    import ipaddress

    items = env_list(name, default)
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ImproperlyConfigured(f"{name} must list IP addresses or CIDR ranges, got {item!r}") from None
    return items
