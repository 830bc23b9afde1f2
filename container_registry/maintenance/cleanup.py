"""Maintenance functions (cleanup)."""

from __future__ import annotations

__all__: list[str] = []
