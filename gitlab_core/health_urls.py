from __future__ import annotations

from django.db import connection
from django.http import JsonResponse
from django.urls import path


def health(request):
    """Liveness and database readiness for load balancers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - any database failure means "not ready"
        return JsonResponse({"status": "failed", "database": "unavailable"}, status=503)
    return JsonResponse({"status": "ok"})


urlpatterns = [path("health", health)]
