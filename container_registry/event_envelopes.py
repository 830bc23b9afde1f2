"""Registry notification envelopes: what the registry sends, parsed and checked.

An envelope is ``{"events": [...]}``; each event has an ``id``, an ``action`` (push,
pull, delete, mount), a ``target`` (``repository``, ``tag``, ``digest``, ``mediaType``,
``references``), a ``request`` (``method``), an ``actor`` (``name``: the ``sub`` of the
token the request carried; none for anonymous pulls) and a ``timestamp``. Anything the
registry would never send is ``InvalidEnvelope`` (answered 400), except an event whose
target names no valid repository: that one is left out and logged, and the others are
applied. What an event changes is ``container_registry.events``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import orjson
from django.utils import timezone

from container_registry.client import (
    DUMMY_CONFIG_DIGEST,
    DUMMY_MANIFEST_DIGEST,
    MANIFEST_TYPES,
    REGISTRY_CLIENT_SUBJECT,
    parse_timestamp,
)
from gitlab_core.text import clean_text
from projects.image_paths import valid_image_path

logger = logging.getLogger(__name__)

ACTIONS = frozenset({"push", "pull", "delete", "mount"})
SCHEMA1_TYPES = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
MANIFEST_MEDIA_TYPES = frozenset((*MANIFEST_TYPES, *SCHEMA1_TYPES))
MAX_FIELD_LENGTH = 255
# distribution's event ids are UUIDs (36 characters); an id is also a webhook's
# Idempotency-Key, so it must travel in a header.
MAX_EVENT_ID_LENGTH = 64
MAX_TEXT_LENGTH = 2048
# RFC 3339 with nanoseconds and an offset is 35 characters.
MAX_TIMESTAMP_LENGTH = 64


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
    actor: str | None = None

    @property
    def is_manifest(self) -> bool:
        return self.media_type in MANIFEST_MEDIA_TYPES

    @property
    def is_ours(self) -> bool:
        """Caused by this service's own registry client (cleanup's manifest and config
        reads, tag details, sizes): its tokens, and only its, carry that subject."""
        return self.actor == REGISTRY_CLIENT_SUBJECT

    @property
    def is_our_dummy_push(self) -> bool:
        """The layer-less manifest our tag deletion writes over a tag before deleting it."""
        if self.digest == DUMMY_MANIFEST_DIGEST:
            return True
        # With ``includereferences`` the registry lists the manifest's blobs: only our
        # 21-byte config and no layers.
        return bool(self.references) and [r.get("digest") for r in self.references] == [DUMMY_CONFIG_DIGEST]


def parse_envelope(body: bytes) -> list[Event]:
    """The events of an envelope ``{"events": [...]}``. Raises InvalidEnvelope when the
    body is not JSON, has no ``events`` list, or an event lacks ``id``, ``action`` (one
    of push, pull, delete, mount) or ``target``. An event whose target has no
    repository, or a repository path that is not valid, is left out and logged: it
    cannot be about any of our images, and the rest of the delivery still counts (the
    registry would re-send a refused delivery forever, holding back every later one)."""
    try:
        # orjson: a fifth of json's time for an envelope; it also refuses nesting deeper
        # than 1,024 levels with a decode error instead of a RecursionError.
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidEnvelope("The request body is not valid JSON")
    if not isinstance(document, dict) or not isinstance(document.get("events"), list):
        raise InvalidEnvelope("events is missing")
    parsed = (_parse_event(raw, index) for index, raw in enumerate(document["events"]))
    return [event for event in parsed if event is not None]


def _text(value, label: str, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT_LENGTH or not clean_text(value):
        raise InvalidEnvelope(f"{label} is {'missing' if value in (None, '') else 'invalid'}")
    return value


def _optional_text(value, label: str) -> str | None:
    """A field the registry may leave out: anything but text is ignored (as before), text
    that no database can hold (a NUL, say) is refused."""
    if not isinstance(value, str) or not value:
        return None
    return _text(value, label, required=False)


def _timestamp(value) -> dt.datetime | None:
    if not isinstance(value, str) or len(value) > MAX_TIMESTAMP_LENGTH:
        return None
    parsed = parse_timestamp(value)
    try:
        # Stored in UTC: an offset that moves the time out of range is no time at all.
        return parsed.astimezone(dt.UTC) if parsed is not None else None
    except (OverflowError, ValueError):
        return None


def _skipped(event_id: str, action: str, index: int, reason: str, repository) -> None:
    # The fields are the registry's: no credential among them. Shortened, since a
    # delivery may carry anything up to the upload limit.
    logger.warning(
        "registry event skipped: %s",
        reason,
        extra={
            "event_id": event_id[:MAX_FIELD_LENGTH],
            "event_action": action,
            "event_index": index,
            "repository": repository[:MAX_FIELD_LENGTH] if isinstance(repository, str) else None,
        },
    )
    return None


def _parse_event(raw, index: int) -> Event | None:
    """The event, or None for one left out (see ``parse_envelope``)."""
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
    if len(event_id) > MAX_EVENT_ID_LENGTH or not event_id.isprintable():
        return _skipped(event_id, action, index, "the event id is not valid", target.get("repository"))
    repository = target.get("repository")
    if not isinstance(repository, str) or not repository:
        return _skipped(event_id, action, index, "the target has no repository", repository)
    # GitLab's container registry path rule, the realm's (255 characters at most, 2 to 19
    # components): a path no project can have is skipped here, never stored.
    if not valid_image_path(repository):
        return _skipped(event_id, action, index, "the repository path is not valid", repository)
    tag = _text(target.get("tag"), f"{label}.target.tag", required=False)
    if tag is not None and len(tag) > MAX_FIELD_LENGTH:
        raise InvalidEnvelope(f"{label}.target.tag is invalid")
    request = raw.get("request") if isinstance(raw.get("request"), dict) else {}
    actor = raw.get("actor") if isinstance(raw.get("actor"), dict) else {}
    references = target.get("references")
    return Event(
        id=event_id,
        action=action,
        repository=repository,
        tag=tag,
        digest=_optional_text(target.get("digest"), f"{label}.target.digest"),
        media_type=_optional_text(target.get("mediaType"), f"{label}.target.mediaType"),
        method=_optional_text(request.get("method"), f"{label}.request.method"),
        actor=actor.get("name") if isinstance(actor.get("name"), str) and actor.get("name") else None,
        # A missing or odd timestamp is not worth a retry loop: the arrival time will do.
        timestamp=_timestamp(raw.get("timestamp")) or timezone.now(),
        references=tuple(r for r in references if isinstance(r, dict)) if isinstance(references, list) else (),
    )
