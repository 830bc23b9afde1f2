"""What administrators do by hand, importable in ``manage.py shell``::

    from container_registry import maintenance
    maintenance.registry_usage(limit=20)
    maintenance.run_cleanup_policy("acme/platform/svc", dry_run=True)
    maintenance.projects_with_disabled_cleanup_policy()
    maintenance.retry_failed_deletions(all=True)
    maintenance.registry_sync(dry_run=True)

Each function has a management command of the same purpose.
"""

from __future__ import annotations

from container_registry.maintenance.cleanup import *  # noqa: F403
from container_registry.maintenance.deletion import *  # noqa: F403
from container_registry.maintenance.sync import *  # noqa: F403
from container_registry.maintenance.usage import *  # noqa: F403
