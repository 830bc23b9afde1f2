"""Signals other apps listen to, so that ``gitlab_core`` never imports them."""

from __future__ import annotations

from django.db import transaction
from django.dispatch import Signal

# Sent after a change to credentials, users, memberships or projects that bypassed the
# models' own signals (a queryset ``update()``): caches of access decisions drop what
# they hold (``jwt_auth.decisions``).
access_changed = Signal()


def send_access_changed(sender) -> None:
    """``access_changed`` now and again once the surrounding transaction commits, so
    that a decision made while the change was still uncommitted is dropped too."""
    access_changed.send(sender=sender)
    transaction.on_commit(lambda: access_changed.send(sender=sender))
