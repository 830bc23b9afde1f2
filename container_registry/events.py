"""What a registry notification changes: each parsed event (``event_envelopes``) applied once.

* ``push`` with a ``tag`` (a manifest pushed under a tag): makes sure the repository row
  exists, counts the push, moves ``last_pushed_at`` forward, marks the project's registry
  size stale, and drops the tag's cached creation time when the tag cache may hold the
  repository's dates (the tag may now name another image). Our own dummy manifest
  (pushed by the tag-deletion recipe) is not a user's push and is ignored.
* ``pull`` of a manifest with GET: counts the pull and moves ``last_pulled_at`` forward.
  HEAD requests (skopeo's existence checks during a push) and blob pulls are not pulls
  of an image and change nothing, and neither do the reads of our own registry client
  (cleanup reading creation times, tag details): the event's actor is its token subject.
* ``delete`` of a tag or of a digest: marks the project's registry size stale. A tag
  push or a delete also asks for the size's debounced refresh
  (``container_registry.statistics``); a manifest pushed by digest without a tag, a
  delete naming neither and pulls do not.
* ``mount`` and blob pushes change nothing: the manifest push that follows does.

Events that change counters are recorded by id (``RegistryEvent``) in the same
transaction that applies them, so a re-sent event is applied exactly once; the other
effects are idempotent and need no record. Events for a project that does not exist (any
more) or a repository being deleted are acknowledged and ignored: they are real registry
traffic, and refusing them would make the registry retry them forever and hold back
every later event. An image path maps to its project by ``projects.image_paths``.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from dataclasses import dataclass, field

from django.db import IntegrityError, connection
from django.utils import timezone

from container_registry import tag_cache
from container_registry.errors import RegistryError
from container_registry.event_envelopes import MAX_FIELD_LENGTH, Event
from container_registry.models import ContainerRepository, RegistryEvent
from container_registry.services import mark_registry_size_stale, stale_sql
from container_registry.statistics import request_size_refresh
from gitlab_core.db import locking, write_together
from projects import webhooks
from projects.image_paths import LEVELS_SUPPORTED, longest_project_sql, padded_candidates, resolve_image_paths
from projects.models import Project

logger = logging.getLogger(__name__)

APPLIED, DUPLICATE, IGNORED = "applied", "duplicates", "ignored"
# No repository row to count on (none yet, or being deleted): ignored unless a push creates it.
MISSING = "missing"


@dataclass
class Outcome:
    applied: int = 0
    duplicates: int = 0
    ignored: int = 0
    stale_projects: set[int] = field(default_factory=set)
    # (action, result) -> events, for the metrics
    by_action: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, result: str, action: str) -> None:
        setattr(self, result, getattr(self, result) + 1)
        self.by_action[action, result] = self.by_action.get((action, result), 0) + 1


def apply_events(events: list[Event]) -> Outcome:
    """Apply parsed events in order (see the module docstring). Database errors
    propagate; events applied before one are committed, and their ids make a re-sent
    envelope skip them."""
    outcome = Outcome()
    relevant = []
    for event in events:
        if (kind := _kind(event)) is not None:
            relevant.append((event, kind))
        else:
            outcome.add(IGNORED, event.action)
    # A counted event finds its image's project within its own writes; a deletion is
    # resolved here, by the access statement (deletions are rare).
    deleted = {event.repository for event, kind in relevant if kind == "stale"}
    images = resolve_image_paths(deleted) if deleted else {}
    pushed: dict[int, set[str]] = {}
    pushed_projects: set[int] = set()
    for_hooks: dict[int, list[webhooks.RegistryChange]] = {}
    project_hooks: dict[int, list[int]] = {}  # read with a push's writes
    for event, kind in relevant:
        if kind == "stale":
            image = images.get(event.repository)
            if image is None or image.project.pending_delete:
                outcome.add(IGNORED, event.action)
                continue
            outcome.add(APPLIED, event.action)
            outcome.stale_projects.add(image.project.pk)
            if event.action == "delete" and not event.is_ours:
                for_hooks.setdefault(image.project.pk, []).append(_hook_change("delete", event))
            continue
        push = kind == "push"
        counted = _apply_counted(event, push=push)
        if counted.result == MISSING and push:
            if RegistryEvent.objects.filter(event_id=event.id).exists():
                # Applied before, and its repository row is gone since (deleted): a
                # re-sent push must not bring it back.
                counted = Counted(DUPLICATE, *(_repository(event) or (None, None)))
            elif _create_for_push(event):
                counted = _apply_counted(event, push=push)
        if counted.hook_ids is not None:
            project_hooks[counted.project_id] = counted.hook_ids
        outcome.add(IGNORED if counted.result == MISSING else counted.result, event.action)
        if not push or counted.project_id is None:
            continue
        # A re-sent push forgets again: the first delivery may have failed after
        # recording the event and before reaching the cache.
        if counted.dates_cached and counted.repository_id is not None:
            pushed.setdefault(counted.repository_id, set()).add(event.tag)
        pushed_projects.add(counted.project_id)
        # A re-sent push is told again: the first delivery may have failed after recording
        # the event and before the hooks heard of it. Its key (the event id) lets a
        # receiver drop what it already has.
        for_hooks.setdefault(counted.project_id, []).append(_hook_change("push", event))
    if outcome.stale_projects:
        mark_registry_size_stale(project_ids=outcome.stale_projects)
    _forget_cached_dates(pushed)
    if outcome.stale_projects or pushed_projects:
        # No database work: a cache key, skipped when this process enqueued one lately.
        request_size_refresh(outcome.stale_projects | pushed_projects)
    for project_id, changes in for_hooks.items():
        webhooks.request_deliveries(project_id, changes, hook_ids=project_hooks.get(project_id))
    return outcome


def _hook_change(action: str, event: Event) -> webhooks.RegistryChange:
    """A tag push, or a deletion the registry reported (our own tag deletions are
    reported by the code that made them, with the tag names)."""
    return webhooks.RegistryChange(
        action=action,
        repository_path=event.repository,
        tag=event.tag,
        digest=_digest(event),
        actor=event.actor,
        key=event.id,
        occurred_at=event.timestamp,
    )


def _kind(event: Event) -> str | None:
    if event.action == "push" and event.tag:
        return None if event.is_our_dummy_push else "push"
    if event.action == "pull" and event.is_manifest and (event.method or "GET").upper() == "GET":
        return None if event.is_ours else "pull"
    # GitLab refreshes the size for a tag push or a delete of a tag or a digest only: a
    # manifest pushed by digest (an index's child) is counted by the tag push that follows.
    if event.action == "delete" and (event.tag or event.digest):
        return "stale"
    return None


@dataclass(frozen=True)
class Counted:
    result: str  # APPLIED, DUPLICATE or MISSING
    # The repository (None when MISSING, or a duplicate's row is gone) and its project.
    repository_id: int | None = None
    project_id: int | None = None
    # Whether the tag cache may hold dates of the repository's tags (a duplicate: maybe).
    dates_cached: bool = True
    # For an applied push: [] when the project has no registry hooks, else None (read them).
    hook_ids: list[int] | None = None


def _apply_counted(event: Event, *, push: bool) -> Counted:
    """Count the push or pull on the image's repository and record the event's id; for a
    push also mark the project's registry size stale. One transaction, one statement on
    PostgreSQL (``write_together``); the statements find the image's repository row
    themselves, by GitLab's path rule (``longest_project_sql``). For a push the update
    also tells whether the tag cache may hold the repository's dates and whether the
    project has registry hooks.

    The id's unique index decides between deliveries, concurrent ones too: a known id
    fails the insert, which undoes the count (DUPLICATE: nothing changes). An image of no
    project, of a project being deleted, or without a repository row or with one being
    deleted counts nothing and records nothing (MISSING)."""
    target, statements = _counting_sql(push, connection.vendor)
    path = event.repository.lower()
    adapt = connection.ops.adapt_datetimefield_value
    stamp, now = adapt(event.timestamp), adapt(timezone.now())
    params = [
        [stamp, stamp, *([now] if push else [])],
        [event.id, event.action, event.repository, event.tag, _digest(event), now],
        [True, True],  # push only: the stale mark
    ][: len(statements)]
    try:
        # The target's parameters: the path and its candidate project paths.
        rows = write_together((target, [path, *padded_candidates(path)]), list(zip(statements, params, strict=True)))
    except IntegrityError:
        repository = _repository(event)
        return Counted(DUPLICATE, *(repository or (None, None)))
    if not rows:
        return Counted(MISSING)
    if not push:
        return Counted(APPLIED, *rows[0])
    repository_id, project_id, dates_cached, has_hooks = rows[0]
    return Counted(APPLIED, repository_id, project_id, bool(dates_cached), None if has_hooks else [])


def _digest(event: Event) -> str | None:
    return (event.digest or "")[:MAX_FIELD_LENGTH] or None


@functools.cache
def _counting_sql(push: bool, vendor: str) -> tuple[str, list[str]]:
    """The ``target`` of ``_apply_counted`` and its statements, written once for SQLite
    and PostgreSQL (the row lock is PostgreSQL's). ``target`` is the image's repository
    row when it may be counted on (found by the path rule, not being deleted, in a
    project not being deleted), locked (``locking``): a deletion that commits while the
    event waits for the row leaves no target, so nothing is counted, recorded or marked.
    The update moves the counter and the date (a re-ordered, older event never moves
    the date back); the insert records the event's id; for a push the last statement
    marks the project's registry size stale. Each acts on ``target`` alone
    (``write_together``)."""
    count_field, stamp_field = ("push_count", "last_pushed_at") if push else ("pull_count", "last_pulled_at")
    repositories = ContainerRepository._meta.db_table
    # The project and the repository name first, so that the row is found by its unique
    # (project, name) index however many repositories the project has.
    target = (
        f"target AS (SELECT r.id AS repository_id, r.project_id FROM {repositories} r "
        f"WHERE (r.project_id, r.name) = (SELECT p.id, substr(%s, length(p.full_path_lower) + 2) "
        f"FROM {Project._meta.db_table} p WHERE p.id = {longest_project_sql(['%s'] * LEVELS_SUPPORTED)} "
        f"AND NOT p.pending_delete) AND r.status IS NULL{locking('r', vendor)})"
    )
    update = (
        f"UPDATE {repositories} SET {count_field} = {count_field} + 1, "
        f"{stamp_field} = CASE WHEN {stamp_field} IS NULL OR {stamp_field} < %s THEN %s ELSE {stamp_field} END "
        "WHERE id = (SELECT repository_id FROM target) RETURNING id, project_id"
    )
    if push:
        # Whether the tag cache may hold the repository's dates, and the project has hooks.
        update += (
            ", CASE WHEN tag_dates_cached_until > %s THEN 1 ELSE 0 END, "
            f"EXISTS ({webhooks.hooks_sql('(SELECT project_id FROM target)')})"
        )
    insert = (
        f"INSERT INTO {RegistryEvent._meta.db_table} "
        "(event_id, action, repository, tag, digest, received_at) SELECT %s, %s, %s, %s, %s, %s FROM target"
    )
    if not push:
        return target, [update, insert]
    return target, [update, insert, stale_sql("SELECT project_id FROM target")]


def _repository(event: Event) -> tuple[int | None, int] | None:
    """The ids of the event's repository (None: no row any more) and project, read
    apart for a duplicate; None when the image belongs to no project."""
    image = resolve_image_paths([event.repository]).get(event.repository)
    if image is None:
        return None
    repository_id = (
        ContainerRepository.objects.filter(project_id=image.project.pk, name=image.repository_name)
        .values_list("pk", flat=True)
        .first()
    )
    return repository_id, image.project.pk


def _create_for_push(event: Event) -> bool:
    """Create the repository row of a push to a repository we have no row for (the token
    realm normally creates it); True when the push may be counted again. True too when
    the row exists and is not being deleted: it was created after the counting
    statement looked (by the realm or a sync). False when no row may be counted on: the
    image belongs to no project or to one being deleted, the row is being deleted, or
    this is a late event for a repository that was deleted meanwhile, which must not
    bring it back: the row is created only if the registry still has the tag at the
    pushed digest. If the registry cannot be asked, the push is trusted."""
    from container_registry.client import get_client
    from container_registry.repositories import ensure_repository

    image = resolve_image_paths([event.repository]).get(event.repository)
    if image is None or image.project.pending_delete:
        return False
    rows = ContainerRepository.objects.filter(project_id=image.project.pk, name=image.repository_name)
    statuses = list(rows.values_list("status", flat=True)[:1])
    if statuses:
        return statuses[0] is None
    try:
        current = get_client().tag_digest(event.repository, event.tag)
    except RegistryError as exc:
        logger.warning("could not verify pushed tag %s:%s: %s", event.repository, event.tag, exc)
        current = event.digest
    if current is None or (event.digest and current != event.digest):
        return False
    project = Project.objects.filter(pk=image.project.pk).first()
    return project is not None and ensure_repository(project=project, name=image.repository_name) is not None


def _forget_cached_dates(pushed: dict[int, set[str]]) -> None:
    """Drop the cached creation times of pushed tags: a tag pushed again may point at
    another image. Runs after the database work; a cache fault is logged and ignored
    (the entry then lives until its TTL, as before), never failing the receiver."""
    for repository_id, tags in pushed.items():
        try:
            tag_cache.forget(repository_id, sorted(tags))
        except Exception as exc:  # noqa: BLE001 -- any cache backend fault; the envelope is applied
            logger.warning("could not forget cached tag dates of repository %s: %s", repository_id, exc)


def prune_recorded_events(*, older_than: dt.timedelta, batch_size: int = 5_000) -> int:
    """Delete the recorded ids of events received before ``now - older_than``, in
    batches (short transactions beside a busy receiver). Returns how many were deleted.
    A re-sent event whose id was pruned would be counted again, so ``older_than`` must
    exceed how long the registry may keep re-sending (see
    ``REGISTRY_EVENT_RETENTION_DAYS``)."""
    old = RegistryEvent.objects.filter(received_at__lt=timezone.now() - older_than).order_by("id")
    deleted = 0
    while True:
        batch = list(old.values_list("id", flat=True)[:batch_size])
        if not batch:
            return deleted
        # No relation or signal points at these rows: Django deletes them with one DELETE.
        deleted += RegistryEvent.objects.filter(id__any=batch).delete()[0]
