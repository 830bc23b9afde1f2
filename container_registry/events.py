"""The registry notification receiver: parse an envelope, apply each event once.

What each event does:

* ``push`` with a ``tag`` (a manifest pushed under a tag): makes sure the repository row
  exists, counts the push, moves ``last_pushed_at`` forward, marks the project's registry
  size stale. Our own dummy manifest (pushed
  by the tag-deletion recipe) is not a user's push and is ignored.
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
import json
import logging
import re
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from container_registry.client import DUMMY_CONFIG_DIGEST, DUMMY_MANIFEST_DIGEST, MANIFEST_TYPES, parse_timestamp
from container_registry.errors import RegistryError
from container_registry.models import ContainerRepository, RegistryEvent
from container_registry.selectors import projects_for_image_paths
from container_registry.services import mark_registry_size_stale

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


@dataclass
class Outcome:
    applied: int = 0
    duplicates: int = 0
    ignored: int = 0
    stale_projects: set[int] = field(default_factory=set)


def parse_envelope(body: bytes) -> list[Event]:
    """The events of an envelope ``{"events": [...]}``. Raises InvalidEnvelope when the
    body is not JSON, has no ``events`` list, or an event lacks ``id``, ``action`` (one
    of push, pull, delete, mount) or ``target.repository`` (a valid repository path)."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
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
    relevant = [e for e in events if _kind(e) is not None]
    outcome.ignored += len(events) - len(relevant)
    projects = projects_for_image_paths(sorted({e.repository for e in relevant}))
    for event in relevant:
        resolved = projects.get(event.repository)
        if resolved is None or resolved[0].pending_delete:
            outcome.ignored += 1
            continue
        project, name = resolved
        kind = _kind(event)
        if kind == "stale":
            _apply_stale(event, project.pk, name, outcome)
        elif kind == "push":
            _apply_counted(event, project, name, outcome, push=True)
        else:
            _apply_counted(event, project, name, outcome, push=False)
    if outcome.stale_projects:
        mark_registry_size_stale(project_ids=outcome.stale_projects)
    return outcome


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


def _apply_stale(event: Event, project_id: int, name: str, outcome: Outcome) -> None:
    outcome.applied += 1
    outcome.stale_projects.add(project_id)


def _apply_counted(event: Event, project, name: str, outcome: Outcome, *, push: bool) -> None:
    repository = ContainerRepository.objects.filter(project=project, name=name).only("pk", "status").first()
    if repository is None and push:
        repository = _create_for_push(event, project, name)
    if repository is None or repository.status is not None:
        outcome.ignored += 1
        return
    stamp_field, count_field = ("last_pushed_at", "push_count") if push else ("last_pulled_at", "pull_count")
    try:
        with transaction.atomic():
            RegistryEvent.objects.create(
                event_id=event.id,
                action=event.action,
                repository=event.repository[:2048],
                tag=event.tag,
                digest=(event.digest or "")[:MAX_FIELD_LENGTH] or None,
            )
            # Greatest: a re-ordered, older event never moves the date backwards.
            ContainerRepository.objects.filter(pk=repository.pk, status__isnull=True).update(
                **{
                    count_field: F(count_field) + 1,
                    stamp_field: Greatest(Coalesce(F(stamp_field), event.timestamp), event.timestamp),
                }
            )
            if push:
                # In the same transaction: one round trip fewer than a separate pass.
                mark_registry_size_stale(project_ids={project.pk})
    except IntegrityError:
        outcome.duplicates += 1
        return
    outcome.applied += 1


def _create_for_push(event: Event, project, name: str) -> ContainerRepository | None:
    """The row for a push to a repository we have no row for (the token realm normally
    creates it). A late event for a repository that was deleted meanwhile must not bring
    it back: the row is created only if the registry still has the tag at the pushed
    digest. If the registry cannot be asked, the push is trusted."""
    from container_registry.client import get_client
    from container_registry.repositories import ensure_repository

    try:
        current = get_client().tag_digest(event.repository, event.tag)
    except RegistryError as exc:
        logger.warning("could not verify pushed tag %s:%s: %s", event.repository, event.tag, exc)
        current = event.digest
    if current is None or (event.digest and current != event.digest):
        return None
    return ensure_repository(project=project, name=name)
