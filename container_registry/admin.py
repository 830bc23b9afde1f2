"""Admin pages of the container registry app."""

from __future__ import annotations

from container_registry import admin_policies  # noqa: F401  (registers the cleanup-policy admin)
