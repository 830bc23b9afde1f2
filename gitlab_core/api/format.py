"""Formatting helpers shared by the API entities."""

from __future__ import annotations

import datetime as dt


def iso(value: dt.datetime | None) -> str | None:
    """ISO 8601 UTC with milliseconds: ``2024-05-01T12:34:56.789Z``."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.isoformat(timespec="milliseconds") + "Z"


def iso_date(value: dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def base_url(request) -> str:
    """The external base URL the client used (honours X-Forwarded-* when configured)."""
    return f"{request.scheme}://{request.get_host()}"
