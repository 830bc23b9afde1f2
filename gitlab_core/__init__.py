from __future__ import annotations

from gitlab_core.celery import app as celery_app

__all__ = ["celery_app"]
