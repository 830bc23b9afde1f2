"""Signals other apps listen to, so that ``gitlab_core`` never imports them."""

from __future__ import annotations

from django.db import transaction
from django.dispatch import Signal

# Sent after a change to credentials, users, memberships or projects that bypassed the
# models' own signals (a queryset ``update()``): caches of access decisions drop what
# they hold (``jwt_auth.decisions``).
access_changed = Signal()

# Sent with ``path=`` (lower case) before a user is created: a receiver returns True when
# another app already holds that top-level path (``projects``: a group, since personal
# namespaces share the top level with groups).
top_level_path_taken = Signal()

# Sent with ``user=`` and ``old_hash=`` when a correct password was checked and Django
# stored it again with its current hasher (a stronger work factor): the password is the
# same, so what was bound to the old hash (the realm's refresh tokens) is moved over.
password_rehashed = Signal()

# Sent with ``user=`` inside the transaction of ``services.create_user``: ``projects``
# creates the personal namespace. An error a receiver raises rolls the user back.
user_created = Signal()


# Sent with ``attributes=`` (cleanup policy attribute -> value, those being changed) and
# ``current=`` (the six attributes as stored) before the instance's default cleanup
# policy settings are saved: the container registry app checks them with the rules of a
# project's policy and raises ``ServiceError`` (400), which stops the save.
cleanup_policy_defaults_submitted = Signal()


def send_access_changed(sender) -> None:
    """``access_changed`` now and again once the surrounding transaction commits, so
    that a decision made while the change was still uncommitted is dropped too."""
    access_changed.send(sender=sender)
    transaction.on_commit(lambda: access_changed.send(sender=sender))
