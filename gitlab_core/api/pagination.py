"""GitLab's offset pagination: ``page``/``per_page`` in, ``X-*`` and ``Link`` headers out."""

from __future__ import annotations

import math
from collections.abc import Sequence
from urllib.parse import urlencode

from django.db.models import QuerySet

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100


def _positive_int(raw: str | None, default: int) -> int:
    try:
        value = int(raw) if raw is not None else default
    except (TypeError, ValueError):
        return default
    return value if value >= 1 else default


def paginate(request, items: QuerySet | Sequence) -> tuple[list, dict[str, str]]:
    """One page of ``items`` and the headers that describe it."""
    page = _positive_int(request.query_params.get("page"), 1)
    per_page = min(_positive_int(request.query_params.get("per_page"), DEFAULT_PER_PAGE), MAX_PER_PAGE)
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
