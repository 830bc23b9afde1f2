"""What administrators do by hand, importable in ``manage.py shell``::

    from container_registry import maintenance
    maintenance.registry_usage(limit=20)
    maintenance.run_cleanup_policy("acme/platform/svc", dry_run=True)
    maintenance.projects_with_disabled_cleanup_policy()
    maintenance.retry_failed_deletions(all=True)
    maintenance.run_checks()
    maintenance.collect_garbage(config_path="/etc/docker/registry/config.yml", dry_run=True)
    maintenance.registry_sync(dry_run=True)

Each function has a management command of the same purpose.
"""

from __future__ import annotations

from container_registry.garbage_collection import collect_garbage as collect_garbage
from container_registry.maintenance.cleanup import *  # noqa: F403
from container_registry.maintenance.deletion import *  # noqa: F403
from container_registry.maintenance.sync import *  # noqa: F403
from container_registry.maintenance.usage import *  # noqa: F403
from container_registry.registry_checks import run_checks as run_checks
from container_registry.registry_config import config_from_settings as config_from_settings
from container_registry.registry_config import render as render
