"""Admin pages for cleanup policies."""

from __future__ import annotations
