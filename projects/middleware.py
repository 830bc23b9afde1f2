"""Keep URL-encoded slashes in ``/api/v4/projects/:id``, ``/api/v4/groups/:id`` and
``/api/v4/namespaces/:id``.

python-gitlab sends ``acme%2Fsvc``; WSGI servers decode ``%2F`` in ``PATH_INFO``. Under
gunicorn (``RAW_URI``) or uWSGI (``REQUEST_URI``) the raw path is used, so the id keeps
its ``%2F``. Servers that give no raw path (granian, Django's runserver and test servers)
fall back to the longest existing project, group or namespace path after the collection
name; when none exists, to the longest path that leaves a known route after it, so that
a path naming nothing is answered by its route (``404 Project Not Found``) on every
server. Route patterns capture the id with ``<str:...>`` and views ``unquote`` it.
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

from django.urls import Resolver404, resolve

from gitlab_core.api.errors import api_not_found
from gitlab_core.text import clean_text
from projects.models import Namespace, Project

API_PREFIX = "/api/v4/"
# GitLab nests groups 20 deep below a top-level group: 21 group levels and a project.
MAX_PATH_SEGMENTS = 22
_COLLECTIONS = ("projects", "groups", "namespaces")


def _encode_segment(segment: str) -> str:
    return quote(segment, safe="")


class RawPathMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info.startswith(API_PREFIX):
            self._rewrite(request)
        return self.get_response(request)

    def _rewrite(self, request) -> None:
        raw = request.META.get("RAW_URI") or request.META.get("REQUEST_URI")
        if raw:
            raw_path = urlsplit(raw).path
            request.META["RAW_REQUEST_PATH"] = raw_path
            rest = [unquote(part) for part in raw_path[len(API_PREFIX) :].split("/")]
        else:
            request.META["RAW_REQUEST_PATH"] = quote(request.path_info)
            rest = request.path_info[len(API_PREFIX) :].split("/")
            if len(rest) >= 3 and rest[0] in _COLLECTIONS and not rest[1].isdigit():
                prefix_len = _longest_existing_path(rest[0], rest[1:]) or _longest_routed_path(rest)
                if prefix_len > 1:
                    rest = [rest[0], "/".join(rest[1 : 1 + prefix_len]), *rest[1 + prefix_len :]]
        if len(rest) >= 2 and rest[0] in _COLLECTIONS:
            # The id is decoded exactly once, by the view: encode it whole here (a literal
            # "%" too, so that "acme%252Fsvc" stays "acme%2Fsvc" and is not found).
            rest[1] = _encode_segment(rest[1])
        request.path_info = API_PREFIX + "/".join(rest)


def _longest_existing_path(collection: str, segments: list[str]) -> int:
    # A full path has at most MAX_PATH_SEGMENTS parts, so longer candidates are never
    # looked up (a URL of thousands of segments made thousands of long ones), nor is
    # text no database can hold.
    segments = segments[:MAX_PATH_SEGMENTS]
    candidates = [c for n in range(len(segments), 1, -1) if clean_text(c := "/".join(segments[:n]).lower())]
    if not candidates:
        return 0
    if collection == "projects":
        found = set(Project.objects.filter(full_path_lower__any=candidates).values_list("full_path_lower", flat=True))
    else:
        namespaces = Namespace.objects.filter(full_path_lower__any=candidates)
        if collection == "groups":
            namespaces = namespaces.filter(kind="group")
        found = set(namespaces.values_list("full_path_lower", flat=True))
    for n in range(len(segments), 1, -1):
        if "/".join(segments[:n]).lower() in found:
            return n
    return 0


def _longest_routed_path(rest: list[str]) -> int:
    """For a path that names nothing and matches no route as it is: the longest id (in
    segments) that leaves a known route after it (``acme/none/registry/repositories``:
    ``acme/none``); 0 when the path routes as it is, or never does."""
    if _routes(rest):
        return 0
    segments = rest[1 : 1 + MAX_PATH_SEGMENTS]
    for n in range(len(segments), 1, -1):
        if _routes([rest[0], _encode_segment("/".join(segments[:n])), *rest[1 + n :]]):
            return n
    return 0


def _routes(parts: list[str]) -> bool:
    try:
        return resolve(API_PREFIX + "/".join(parts)).func is not api_not_found
    except Resolver404:
        return False
