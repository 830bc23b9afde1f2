"""The WSGI application: Django, with two machine endpoints taken before it.

The registry calls the token realm for every token and posts one notification per
request to the event receiver, waiting for each answer. These two paths go straight to
bare WSGI doors (``gitlab_core.doors``) that answer exactly as the Django views of the
same paths do, without middleware and URL resolution. So do the liveness, readiness and
metrics probes, which must answer whatever the ``Host`` header. Every other request is
Django's.
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gitlab_core.settings")
django_application = get_wsgi_application()

# Imported once the apps are loaded (above).
from container_registry import receiver  # noqa: E402
from gitlab_core import doors, health  # noqa: E402
from jwt_auth import views as realm  # noqa: E402

DOORS = {
    "/jwt/auth": realm.answer_environ,
    receiver.PATH: receiver.answer_environ,
    # Probes by IP address: no Host check (gitlab_core.health).
    "/-/liveness": health.liveness,
    "/-/readiness": health.readiness,
    "/-/metrics": health.metrics_text,
}


def application(environ, start_response):
    handler = DOORS.get(environ.get("PATH_INFO", ""))
    if handler is not None:
        return doors.serve(environ, start_response, handler)
    return django_application(environ, start_response)
