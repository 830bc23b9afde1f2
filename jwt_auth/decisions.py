"""A realm decision reused for an identical request within one second.

A registry client asks for the same token many times in a row: every layer pull or push
of ``docker``/``skopeo`` that meets a 401 asks again with the same credentials and
scopes, and CI fleets do so by the hundred. Resolving the credential and the project
permissions costs a database round trip for a personal access token (three for a deploy
token, four for a password); signing the token is the rest. So the
*decision* (who the caller is and the ``access`` it was granted: what the token is
minted from, nothing more) of a successful request is kept for
``REALM_DECISION_CACHE_SECONDS`` (default 1, 0 turns it off), keyed by a digest of the
exact request: ``Authorization`` header, query string and client address
(``gitlab_core.client_address``, the ban's address). A hit still
signs a new token (fresh ``jti``, times). The scopes it refused were logged when the
decision was made and are not kept, so a hit does not log them again: a request's
refusals must not grow the cache. Failures are never kept, so every bad attempt is
counted by the failed-login throttle. The cache is bounded in entries and in bytes
(``MAX_ENTRIES``, ``MAX_BYTES``); a decision larger than ``MAX_DECISION_BYTES`` is
not kept.

What this costs: a token revoked, a user blocked or a membership removed in another
process can still get a token for at most that window, counted from when the decision's
data was read. The token the registry already holds stays valid for its whole lifetime
(5 minutes by default) whatever we do, as in GitLab, so the window adds 1 s to 300.
Any change made in this process through the models (tokens, users, memberships,
projects, groups, deploy tokens, CI jobs, settings, container repositories) or through
a service that updates them in bulk
(``gitlab_core.signals.access_changed``: revocations, finished CI jobs, project
deletion) clears the cache at once.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_migrate, post_save

from gitlab_core.signals import access_changed
from gitlab_core.ttl_cache import TTLCache

DEFAULT_SECONDS = 1.0
MAX_ENTRIES = 10_000
MAX_BYTES = 32 * 1024 * 1024
# A grant of every scope a request may carry (``MAX_SCOPES``) with long paths fits.
MAX_DECISION_BYTES = 256 * 1024


@dataclass(frozen=True)
class Decision:
    """What a successful realm request decided: everything the token is minted from."""

    subject: str | None
    auth_type: str | None
    user_info: dict | None
    access: tuple[dict, ...]


def request_key(authorization: str, query: str, client_ip: str) -> bytes:
    return hashlib.sha256(f"{authorization}\0{query}\0{client_ip}".encode("utf-8", "surrogateescape")).digest()


def _window() -> float:
    return float(getattr(settings, "REALM_DECISION_CACHE_SECONDS", DEFAULT_SECONDS))


_decisions = TTLCache(ttl=_window, max_entries=MAX_ENTRIES, max_bytes=MAX_BYTES, max_item_bytes=MAX_DECISION_BYTES)


def lookup(key: bytes) -> Decision | None:
    return _decisions.get(key)


def begin() -> tuple[int, float]:
    """Call before reading what a decision is made of; pass the result to ``remember``."""
    return _decisions.generation, time.monotonic()


def remember(key: bytes, decision: Decision, started: tuple[int, float]) -> None:
    """Keep ``decision`` until ``window`` after its data was read (``started``), unless
    the cache was cleared meanwhile: a change committed while the decision was being
    made (a slow password hash, a lock wait) must not be outlived."""
    window = _window()
    generation, read_at = started
    if window <= 0 or transaction.get_connection().in_atomic_block:
        # Inside a transaction (a test case, a caller's atomic block) what was read may
        # never be committed.
        return
    _decisions.set(key, decision, expires_at=read_at + window, generation=generation)


def clear(**_kwargs) -> None:
    _decisions.clear()


_WATCHED = (
    "gitlab_core.User",
    "gitlab_core.PersonalAccessToken",
    "gitlab_core.ApplicationSettings",
    "projects.Namespace",  # groups (a proxy model) included
    "projects.Project",
    "projects.GroupMember",
    "projects.ProjectMember",
    "projects.DeployToken",
    "projects.CiJob",
    "projects.ContainerRepositoryProtectionRule",
    # A granted push creates the repository row; a deleted row must come back at once.
    "container_registry.ContainerRepository",
)


def _changed(sender, **kwargs) -> None:
    # Cleared now and again at commit, so that a decision racing the commit is not kept.
    clear()
    transaction.on_commit(clear)


def connect_invalidation() -> None:
    """Clear the cache whenever a model a realm decision reads is saved or deleted
    (``jwt_auth.apps``), proxies included (a ``Group`` saves as itself). Connected per
    model: a receiver for every sender would make Django give up fast bulk deletes of
    all other models. Queryset ``update()`` sends no signal: those changes wait for the
    window to pass."""
    from django.apps import apps

    watched = {apps.get_model(label) for label in _WATCHED}
    for model in apps.get_models():
        if model._meta.concrete_model in watched:
            for signal in (post_save, post_delete):
                signal.connect(_changed, sender=model, dispatch_uid=f"jwt_auth.decisions.{model._meta.label}")
    post_migrate.connect(clear, dispatch_uid="jwt_auth.decisions.database_reset")
    # Changes made with queryset updates (revocations, a project marked for deletion).
    access_changed.connect(clear, dispatch_uid="jwt_auth.decisions.access_changed")
