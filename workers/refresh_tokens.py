"""Celery task that removes refresh tokens past their date."""

from __future__ import annotations

import logging

from gitlab_core.celery import app
from jwt_auth import refresh_tokens

__all__ = ["prune_refresh_tokens"]

logger = logging.getLogger(__name__)


@app.task(name="jwt_auth.prune_refresh_tokens")
def prune_refresh_tokens() -> int:
    """Daily: delete expired registry refresh tokens (the realm refuses them already).
    Returns how many were deleted."""
    deleted = refresh_tokens.delete_expired()
    logger.info("expired registry refresh tokens pruned", extra={"deleted": deleted})
    return deleted
