"""Signals other apps listen to, so that ``projects`` never imports them."""

from __future__ import annotations

from django.dispatch import Signal

# Sent with ``project=`` after DELETE /projects/:id marked the project pending deletion,
# before the row goes: the registry app schedules deletion of its repositories.
project_deletion_requested = Signal()
