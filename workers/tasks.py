"""Celery task modules. ``autodiscover_tasks(["workers"])`` imports this module."""

from __future__ import annotations

from workers.cleanup import *  # noqa: F403
from workers.deletion import *  # noqa: F403
from workers.events import *  # noqa: F403
from workers.refresh_tokens import *  # noqa: F403
from workers.statistics import *  # noqa: F403
from workers.webhooks import *  # noqa: F403
