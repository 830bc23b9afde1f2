"""Celery task modules. ``autodiscover_tasks(["workers"])`` imports this module."""

from __future__ import annotations
