"""The registry notification receiver: parse an envelope, apply each event once.

What each event does:

* ``push`` with a ``tag`` (a manifest pushed under a tag): makes sure the repository row
  exists, counts the push, moves ``last_pushed_at`` forward, marks the project's registry
  size stale, and drops the tag's cached creation time (the tag may now name another
  image). Our own dummy manifest (pushed by the tag-deletion recipe) is not a user's
  push and is ignored.
* ``pull`` of a manifest with GET: counts the pull and moves ``last_pulled_at`` forward.
  HEAD requests (skopeo's existence checks during a push) and blob pulls are not pulls
  of an image and change nothing.
* ``delete`` (a tag, or a manifest by digest) and a manifest ``push`` by digest: mark
  the project's registry size stale.
* ``mount`` and blob pushes change nothing: the manifest push that follows does.

Events that change counters are recorded by id (``RegistryEvent``) in the same
transaction that applies them, so a re-sent event is applied exactly once; the other
effects are idempotent and need no record. Events for a project that does not exist (any
more) or a repository being deleted are acknowledged and ignored: they are real registry
traffic, and refusing them would make the registry retry them forever and hold back
every later event.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
from dataclasses import dataclass, field, replace

import orjson
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from container_registry import tag_cache
from container_registry.client import DUMMY_CONFIG_DIGEST, DUMMY_MANIFEST_DIGEST, MANIFEST_TYPES, parse_timestamp
from container_registry.errors import RegistryError
from container_registry.models import ContainerRepository, ProjectRegistryStatistics, RegistryEvent
from container_registry.selectors import MAX_IMAGE_DEPTH
from container_registry.services import mark_registry_size_stale
from gitlab_core.hot_queries import fetch_all
from projects.models import Project

logger = logging.getLogger(__name__)

ACTIONS = frozenset({"push", "pull", "delete", "mount"})
SCHEMA1_TYPES = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
MANIFEST_MEDIA_TYPES = frozenset((*MANIFEST_TYPES, *SCHEMA1_TYPES))
# distribution's repository name grammar (reference.NameRegexp), lower case only.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*"
REPOSITORY_PATH = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
MAX_FIELD_LENGTH = 255
_PROJECTS = Project._meta.db_table
_REPOSITORIES = ContainerRepository._meta.db_table
_EVENTS = RegistryEvent._meta.db_table
_STATISTICS = ProjectRegistryStatistics._meta.db_table


class InvalidEnvelope(Exception):
    """The body is not an envelope the registry would send (answered with 400)."""


@dataclass(frozen=True)
class Event:
    id: str
    action: str
    repository: str
    tag: str | None
    digest: str | None
    media_type: str | None
    method: str | None
    timestamp: dt.datetime
    references: tuple[dict, ...] = ()

    @property
    def is_manifest(self) -> bool:
        return self.media_type in MANIFEST_MEDIA_TYPES

    @property
    def is_our_dummy_push(self) -> bool:
        """The layer-less manifest our tag deletion writes over a tag before deleting it."""
        if self.digest == DUMMY_MANIFEST_DIGEST:
            return True
        # With ``includereferences`` the registry lists the manifest's blobs: only our
        # 21-byte config and no layers.
        return bool(self.references) and [r.get("digest") for r in self.references] == [DUMMY_CONFIG_DIGEST]


APPLIED, DUPLICATE, IGNORED, MISSING = "applied", "duplicates", "ignored", "missing"


@dataclass
class Outcome:
    applied: int = 0
    duplicates: int = 0
    ignored: int = 0
    stale_projects: set[int] = field(default_factory=set)

    def add(self, result: str) -> None:
        setattr(self, result, getattr(self, result) + 1)


def parse_envelope(body: bytes) -> list[Event]:
    """The events of an envelope ``{"events": [...]}``. Raises InvalidEnvelope when the
    body is not JSON, has no ``events`` list, or an event lacks ``id``, ``action`` (one
    of push, pull, delete, mount) or ``target.repository`` (a valid repository path)."""
    try:
        # orjson: a fifth of json's time for an envelope; it also refuses nesting deeper
        # than 1,024 levels with a decode error instead of a RecursionError.
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidEnvelope("The request body is not valid JSON")
    if not isinstance(document, dict) or not isinstance(document.get("events"), list):
        raise InvalidEnvelope("events is missing")
    return [_parse_event(raw, index) for index, raw in enumerate(document["events"])]


def _text(value, label: str, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > 2048:
        raise InvalidEnvelope(f"{label} is {'missing' if value in (None, '') else 'invalid'}")
    return value


def _parse_event(raw, index: int) -> Event:
    label = f"events[{index}]"
    if not isinstance(raw, dict):
        raise InvalidEnvelope(f"{label} is invalid")
    event_id = _text(raw.get("id"), f"{label}.id", required=True)
    action = _text(raw.get("action"), f"{label}.action", required=True)
    if action not in ACTIONS:
        raise InvalidEnvelope(f"{label}.action does not have a valid value")
    target = raw.get("target")
    if not isinstance(target, dict):
        raise InvalidEnvelope(f"{label}.target is missing")
    repository = _text(target.get("repository"), f"{label}.target.repository", required=True)
    if not REPOSITORY_PATH.match(repository):
        raise InvalidEnvelope("Invalid repository path")
    tag = _text(target.get("tag"), f"{label}.target.tag", required=False)
    if tag is not None and len(tag) > MAX_FIELD_LENGTH:
        raise InvalidEnvelope(f"{label}.target.tag is invalid")
    request = raw.get("request") if isinstance(raw.get("request"), dict) else {}
    references = target.get("references")
    return Event(
        id=event_id[:MAX_FIELD_LENGTH],
        action=action,
        repository=repository,
        tag=tag,
        digest=target.get("digest") if isinstance(target.get("digest"), str) else None,
        media_type=target.get("mediaType") if isinstance(target.get("mediaType"), str) else None,
        method=request.get("method") if isinstance(request.get("method"), str) else None,
        # A missing or odd timestamp is not worth a retry loop: the arrival time will do.
        timestamp=parse_timestamp(raw.get("timestamp")) or timezone.now(),
        references=tuple(r for r in references if isinstance(r, dict)) if isinstance(references, list) else (),
    )


def apply_events(events: list[Event]) -> Outcome:
    """Apply parsed events in order (see the module docstring). Database errors
    propagate; events applied before one are committed, and their ids make a re-sent
    envelope skip them."""
    outcome = Outcome()
    relevant = [(event, kind) for event in events if (kind := _kind(event)) is not None]
    outcome.ignored += len(events) - len(relevant)
    # On PostgreSQL a counted event is looked up and applied by one statement.
    one_statement = connection.vendor == "postgresql"
    lookups = sorted({event.repository for event, kind in relevant if kind == "stale" or not one_statement})
    targets = resolve_targets(lookups) if lookups else {}
    pushed: dict[int, set[str]] = {}
    for event, kind in relevant:
        push = kind == "push"
        if kind == "stale":
            target = targets.get(event.repository)
            if target is None or target.pending_delete:
                outcome.add(IGNORED)
            else:
                outcome.add(APPLIED)
                outcome.stale_projects.add(target.project_id)
        else:
            if one_statement:
                result, repository_id = _apply_counted_postgresql(event, push=push)
            else:
                target = targets.get(event.repository)
                if push and target is not None and not target.pending_delete and target.repository_id is None:
                    # Later events of this envelope find the new row too.
                    target = targets[event.repository] = _create_for_push(event, target)
                result = _apply_counted_portable(event, target, push=push)
                repository_id = target.repository_id if target is not None else None
            outcome.add(result)
            # A re-sent push forgets again: the first delivery may have failed after
            # recording the event and before reaching the cache.
            if push and result in (APPLIED, DUPLICATE) and repository_id is not None:
                pushed.setdefault(repository_id, set()).add(event.tag)
    if outcome.stale_projects:
        mark_registry_size_stale(project_ids=outcome.stale_projects)
    _forget_cached_dates(pushed)
    return outcome


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
        deleted += RegistryEvent.objects.filter(id__in=batch).delete()[0]


def _kind(event: Event) -> str | None:
    if event.action == "push" and event.tag:
        return None if event.is_our_dummy_push else "push"
    if event.action == "push" and event.is_manifest:
        return "stale"
    if event.action == "pull" and event.is_manifest and (event.method or "GET").upper() == "GET":
        return "pull"
    if event.action == "delete":
        return "stale"
    return None


@dataclass(frozen=True)
class Target:
    """Where an image path points: its project and, when the row exists, its repository."""

    project_id: int
    pending_delete: bool
    name: str
    repository_id: int | None
    repository_status: str | None


def _splits(path: str) -> list[tuple[str, str]]:
    """Every (project path, image name) an image path may stand for, longest project
    path first (GitLab: at most ``MAX_IMAGE_DEPTH`` components below the project)."""
    parts = path.lower().split("/")
    first = max(1, len(parts) - MAX_IMAGE_DEPTH)
    return [("/".join(parts[:n]), "/".join(parts[n:])) for n in range(len(parts), first - 1, -1)]


def _placeholders(values: list) -> str:
    return ", ".join(["%s"] * len(values))


def resolve_targets(paths: list[str]) -> dict[str, Target]:
    """The project (the longest project path that prefixes the image path) and
    repository row of each image path, in one query: projects joined with repositories
    on every candidate split of the paths. Paths of no project are left out."""
    candidates = {path: _splits(path) for path in paths}
    project_paths = sorted({project for splits in candidates.values() for project, _name in splits})
    names = sorted({name for splits in candidates.values() for _project, name in splits})
    if not project_paths:
        return {}
    # Plain SQL here and below: the ORM would spend more time building these queries than
    # the database spends answering them, and they are on the path of every event.
    sql = (
        f"SELECT p.id, p.full_path_lower, p.pending_delete, r.id, r.name, r.status FROM {_PROJECTS} p "
        f"LEFT JOIN {_REPOSITORIES} r ON r.project_id = p.id AND r.name IN ({_placeholders(names)}) "
        f"WHERE p.full_path_lower IN ({_placeholders(project_paths)})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*names, *project_paths])
        rows = cursor.fetchall()
    projects = {row[1]: (row[0], bool(row[2])) for row in rows}
    repositories = {(row[1], row[4]): (row[3], row[5]) for row in rows if row[3] is not None}
    result: dict[str, Target] = {}
    for path, splits in candidates.items():
        for project_path, name in splits:
            if project_path in projects:
                project_id, pending_delete = projects[project_path]
                repository_id, status = repositories.get((project_path, name), (None, None))
                result[path] = Target(project_id, pending_delete, name, repository_id, status)
                break
    return result


def _event_row(event: Event) -> list:
    """The recorded event's id, action, repository, tag and digest."""
    return [event.id, event.action, event.repository[:2048], event.tag, (event.digest or "")[:MAX_FIELD_LENGTH] or None]


def _counters(push: bool) -> tuple[str, str]:
    return ("push_count", "last_pushed_at") if push else ("pull_count", "last_pulled_at")


def _apply_counted_postgresql(event: Event, *, push: bool) -> tuple[str, int | None]:
    """Apply a push or pull with one statement; a push to a repository without a row
    (rare: the token realm creates it) creates the row and tries again. Returns the
    result and the repository's id (None when there is no row)."""
    result, repository_id = _apply_in_one_statement(event, push=push)
    if result == MISSING and push:
        target = resolve_targets([event.repository]).get(event.repository)
        if target is not None and _create_for_push(event, target).repository_id is not None:
            result, repository_id = _apply_in_one_statement(event, push=push)
    return (IGNORED if result == MISSING else result), repository_id


def _apply_in_one_statement(event: Event, *, push: bool) -> tuple[str, int | None]:
    """Find the event's project and repository, record the event id, count the event
    and (for a push) mark the project's registry size stale: one statement, so one round
    trip and no BEGIN/COMMIT. Returns APPLIED, DUPLICATE (id seen before: nothing
    changes), IGNORED (no project, project or repository being deleted) or MISSING
    (project without a row for the repository: nothing changes), with the repository's
    id when it has a row."""
    splits = _splits(event.repository)
    params = [value for split in splits for value in split]
    params += [*_event_row(event), event.timestamp]
    # Prepared (gitlab_core.hot_queries): planning this statement cost PostgreSQL more
    # than running it, 0.65 ms of CPU per event instead of 0.25 ms.
    rows = fetch_all(_one_statement_sql(len(splits), push), params)
    project_id, pending_delete, repository_id, status, recorded = rows[0]
    if recorded:
        return APPLIED, repository_id
    if project_id is None or pending_delete or status is not None:
        return IGNORED, repository_id
    return (MISSING if repository_id is None else DUPLICATE), repository_id


@functools.cache
def _one_statement_sql(candidates: int, push: bool) -> str:
    """The statement of ``_apply_in_one_statement`` for an image path with this many
    candidate project paths (built once per shape: it is on the path of every event).
    Parameters: (project path, image name) per candidate, longest project path first,
    then the event's id, action, repository, tag and digest, and its time."""
    count_field, stamp_field = _counters(push)
    splits = ", ".join(f"(%s, %s, {rank})" for rank in range(candidates))
    # ``target`` is the longest project path that exists (GitLab's rule) with its row
    # for the image, both found by their unique indexes; every later part acts only
    # when the event id was new. GREATEST (which skips NULLs on PostgreSQL): a
    # re-ordered, older event never moves the date back. received_at is the database's
    # clock.
    sql = [
        f"WITH target AS (SELECT p.id AS project_id, p.pending_delete, r.id AS repository_id, r.status "
        f"FROM (VALUES {splits}) AS split (project_path, name, rank) "
        f"JOIN {_PROJECTS} p ON p.full_path_lower = split.project_path "
        f"LEFT JOIN {_REPOSITORIES} r ON r.project_id = p.id AND r.name = split.name "
        "ORDER BY split.rank LIMIT 1), "
        f"recorded AS (INSERT INTO {_EVENTS} (event_id, action, repository, tag, digest, received_at) "
        "SELECT %s, %s, %s, %s, %s, now() FROM target "
        "WHERE NOT target.pending_delete AND target.repository_id IS NOT NULL AND target.status IS NULL "
        "ON CONFLICT (event_id) DO NOTHING RETURNING 1), "
        f"counted AS (UPDATE {_REPOSITORIES} SET {count_field} = {count_field} + 1, "
        f"{stamp_field} = GREATEST({stamp_field}, %s) "
        "WHERE id = (SELECT repository_id FROM target) AND status IS NULL AND EXISTS (SELECT 1 FROM recorded))"
    ]
    if push:
        # Only a statistics row not stale yet is written: concurrent pushes of one
        # project then take no lock on it. A missing row is inserted.
        sql.append(
            f", staled AS (UPDATE {_STATISTICS} SET stale = true WHERE project_id = (SELECT project_id FROM target) "
            "AND NOT stale AND EXISTS (SELECT 1 FROM recorded)), "
            f"created AS (INSERT INTO {_STATISTICS} (project_id, container_registry_size, stale) "
            "SELECT project_id, 0, true FROM target WHERE EXISTS (SELECT 1 FROM recorded) "
            f"AND NOT EXISTS (SELECT 1 FROM {_STATISTICS} s WHERE s.project_id = target.project_id) "
            "ON CONFLICT (project_id) DO NOTHING)"
        )
    sql.append(
        " SELECT t.project_id, t.pending_delete, t.repository_id, t.status, EXISTS (SELECT 1 FROM recorded) "
        "FROM (SELECT 1) AS one LEFT JOIN target t ON true"
    )
    return "".join(sql)


def _apply_counted_portable(event: Event, target: Target | None, *, push: bool) -> str:
    """``_apply_in_one_statement`` for other databases (SQLite), with the target
    resolved beforehand: the same effects in one transaction of a few statements."""
    if target is None or target.pending_delete or target.repository_id is None or target.repository_status:
        return IGNORED
    count_field, stamp_field = _counters(push)
    event_id, action, repository, tag, digest = _event_row(event)
    try:
        with transaction.atomic():
            RegistryEvent.objects.create(
                event_id=event_id,
                action=action,
                repository=repository,
                tag=tag,
                digest=digest,
                received_at=timezone.now(),
            )
            ContainerRepository.objects.filter(pk=target.repository_id, status__isnull=True).update(
                **{
                    count_field: F(count_field) + 1,
                    stamp_field: Greatest(Coalesce(F(stamp_field), event.timestamp), event.timestamp),
                }
            )
            if push:
                mark_registry_size_stale(project_ids={target.project_id})
    except IntegrityError:
        return DUPLICATE
    return APPLIED


def _create_for_push(event: Event, target: Target) -> Target:
    """``target`` with the repository row of a push to a repository we have no row for
    (the token realm normally creates it), unchanged when none may be created. A late
    event for a repository that was deleted meanwhile must not bring it back: the row is
    created only if the registry still has the tag at the pushed digest. If the registry
    cannot be asked, the push is trusted."""
    from container_registry.client import get_client
    from container_registry.repositories import ensure_repository

    try:
        current = get_client().tag_digest(event.repository, event.tag)
    except RegistryError as exc:
        logger.warning("could not verify pushed tag %s:%s: %s", event.repository, event.tag, exc)
        current = event.digest
    if current is None or (event.digest and current != event.digest):
        return target
    project = Project.objects.filter(pk=target.project_id).first()
    repository = ensure_repository(project=project, name=target.name) if project is not None else None
    if repository is None:
        return target
    return replace(target, repository_id=repository.pk, repository_status=repository.status)
