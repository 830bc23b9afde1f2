"""GitLab's offset pagination: ``page``/``per_page`` in, ``X-*`` and ``Link`` headers out."""

from __future__ import annotations

import math
from collections.abc import Sequence
from urllib.parse import urlencode

from django.db.models import QuerySet

from gitlab_core.errors import invalid_params

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100


def _positive_int(name: str, raw: str | None, default: int, problems: list[str]) -> int:
    """GitLab's reading of an integer parameter: not a number is "invalid", below 1 "does
    not have a valid value". A huge page is valid (and empty)."""
    if raw is None:
        return default
    text = raw.strip()
    try:
        if not (text.isascii() and text.lstrip("+-").isdigit()):
            raise ValueError
        value = int(text)
    except ValueError:  # also: more digits than Python converts
        problems.append(f"{name} is invalid")
        return default
    if value < 1:
        problems.append(f"{name} does not have a valid value")
        return default
    return value


def page_params(request) -> tuple[int, int]:
    """``page`` and ``per_page`` (clamped to 100); raises ``ServiceError`` 400 in GitLab's
    words for a value that is not a positive integer."""
    problems: list[str] = []
    page = _positive_int("page", request.query_params.get("page"), 1, problems)
    per_page = _positive_int("per_page", request.query_params.get("per_page"), DEFAULT_PER_PAGE, problems)
    if problems:
        raise invalid_params(*problems)
    return page, min(per_page, MAX_PER_PAGE)


def paginate(request, items: QuerySet | Sequence) -> tuple[list, dict[str, str]]:
    """One page of ``items`` and the headers that describe it. Raises ``ServiceError``
    400 for an invalid ``page`` or ``per_page``."""
    page, per_page = page_params(request)
    total = items.count() if isinstance(items, QuerySet) else len(items)
    total_pages = max(1, math.ceil(total / per_page))
    start = (page - 1) * per_page
    # A page past the end is empty; never hand the database an offset it cannot store.
    page_items = list(items[start : start + per_page]) if start < total else []

    headers = {
        "X-Page": str(page),
        "X-Per-Page": str(per_page),
        "X-Total": str(total),
        "X-Total-Pages": str(total_pages),
        "X-Next-Page": str(page + 1) if page < total_pages else "",
        "X-Prev-Page": str(page - 1) if page > 1 and page - 1 <= total_pages else "",
    }
    links = []
    if headers["X-Prev-Page"]:
        links.append(f'<{_page_url(request, page - 1, per_page)}>; rel="prev"')
    if headers["X-Next-Page"]:
        links.append(f'<{_page_url(request, page + 1, per_page)}>; rel="next"')
    links.append(f'<{_page_url(request, 1, per_page)}>; rel="first"')
    links.append(f'<{_page_url(request, total_pages, per_page)}>; rel="last"')
    headers["Link"] = ", ".join(links)
    return page_items, headers


def _page_url(request, page: int, per_page: int) -> str:
    params = [
        (k, v) for k in request.query_params for v in request.query_params.getlist(k) if k not in ("page", "per_page")
    ]
    params += [("page", str(page)), ("per_page", str(per_page))]
    base = request.build_absolute_uri(request.META.get("RAW_REQUEST_PATH") or request.path)
    return f"{base}?{urlencode(params)}"
