"""``/-/...``: the health check, liveness, readiness and metrics as Django views.

Production servers answer the last three through bare WSGI doors (``gitlab_core.wsgi``),
before Django checks the ``Host`` header; these views call the same functions for the
test client and ``runserver``.
"""

from __future__ import annotations

from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.urls import path

from gitlab_core import health as checks


def health(request):
    """Liveness and database readiness for load balancers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - any database failure means "not ready"
        return JsonResponse({"status": "failed", "database": "unavailable"}, status=503)
    return JsonResponse({"status": "ok"})


def door_view(handler):
    """A Django view answering as the door ``handler`` does."""

    def view(request):
        status, headers, content_type, body = handler(request.META)
        response = HttpResponse(body, status=status, content_type=content_type)
        for name, value in headers:
            response[name] = value
        return response

    view.__name__ = handler.__name__
    return view


urlpatterns = [
    path("health", health),
    path("liveness", door_view(checks.liveness)),
    path("readiness", door_view(checks.readiness)),
    path("metrics", door_view(checks.metrics_text)),
]
