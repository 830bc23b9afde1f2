"""The WSGI application: Django, with the registry's event deliveries taken before it.

The registry posts one event per request and waits for each answer; that one path goes
straight to ``container_registry.receiver.wsgi_app``, which answers exactly as the Django
view of the same path does, without middleware and URL resolution
(``docs/bench-events.md``). Every other request is Django's.
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gitlab_core.settings")
django_application = get_wsgi_application()

from container_registry import receiver  # noqa: E402  (needs the apps loaded above)


def application(environ, start_response):
    if environ.get("PATH_INFO") == receiver.PATH:
        return receiver.wsgi_app(environ, start_response)
    return django_application(environ, start_response)
