"""Signals the registry app sends, so that it never imports the Celery tasks above it."""

from __future__ import annotations

from django.dispatch import Signal

# Sent with ``user_id=``, ``repository_id=`` and ``params=`` (the cleanup rules as
# request parameters) when the API accepted a bulk tag deletion: ``workers`` enqueues the
# deletion once the transaction commits.
tag_cleanup_requested = Signal()

# Sent with ``project_id=`` and ``countdown=`` (seconds) when a project's registry size
# should be measured again (``container_registry.statistics``): ``workers`` enqueues the
# refresh task, due after the countdown.
registry_size_refresh_requested = Signal()
