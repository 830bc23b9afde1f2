"""The audit log: who changed which access or data, from where, and when.

Recorders call ``record`` inside the transaction of the change they describe, so an event
exists exactly when its change was committed (no lost, no phantom events). The author and
the client address come from the request being served (``AuditContextMiddleware`` keeps
it, for the API and the admin alike); without one (a Celery task, a command, the realm's
bare door) the author is the system, and a recorder may name the client address itself.

An event is listed under its entity: a ``User``, a ``Project``, a ``Group`` or the
instance (``INSTANCE``). Entities are referenced by type name and id, so this module never
imports another app: a model that can be an entity has an ``audit_entity`` property.
Secrets never reach an event: recorders pass names and ids, and every text is redacted
again here (``gitlab_core.redaction``) in case a name holds a token.
"""

from __future__ import annotations

import datetime as dt
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.db import models

from gitlab_core.client_address import client_address
from gitlab_core.models import AuditEvent, User
from gitlab_core.redaction import redact

SYSTEM_AUTHOR_ID = -1
SYSTEM_AUTHOR_NAME = "(system)"
MAX_TEXT = 2048


@dataclass(frozen=True)
class Entity:
    type: str
    id: int
    path: str


@dataclass(frozen=True)
class Target:
    """What an event acted on when it is not a model row (a login ban's pair)."""

    type: str
    id: int | None
    details: str


# GitLab's scope of instance-wide events (application settings, login bans).
INSTANCE = Entity("Gitlab::Audit::InstanceScope", 1, "gitlab_instance")
ENTITY_TYPES = ("User", "Project", "Group", INSTANCE.type)

_current_request: ContextVar[Any] = ContextVar("audit_request", default=None)


class AuditContextMiddleware:
    """Keeps the request being served, for the author and client address of its events.

    DRF's token authentication sets ``user`` on the Django request too, so API and admin
    requests are read the same way, when an event is recorded.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _current_request.set(request)
        try:
            return self.get_response(request)
        finally:
            _current_request.reset(token)


def user_entity(user: User) -> Entity:
    return Entity("User", user.pk, user.username)


def _entity(subject: Entity | User | Any) -> Entity:
    if isinstance(subject, Entity):
        return subject
    if isinstance(subject, User):
        return user_entity(subject)
    return subject.audit_entity


def _target(target: Target | models.Model | None, details: str | None) -> Target | None:
    if target is None or isinstance(target, Target):
        return target
    return Target(type(target).__name__, target.pk, details if details is not None else str(target))


def _text(value: str) -> str:
    # Names come from requests and forms; no database stores a NUL or a lone surrogate.
    value = value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    return redact(value)[:MAX_TEXT]


def _value(value: Any) -> Any:
    """A change's from/to as JSON: text redacted, dates in ISO 8601, choices by value."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_value(item) for item in value]
    return _text(str(value))


def _author_and_address() -> tuple[int, str, str]:
    request = _current_request.get()
    if request is None:
        return SYSTEM_AUTHOR_ID, SYSTEM_AUTHOR_NAME, ""
    address = client_address(request.META)
    user = getattr(request, "user", None)
    if isinstance(user, User) and user.pk is not None:
        return user.pk, user.name or user.username, address
    return SYSTEM_AUTHOR_ID, SYSTEM_AUTHOR_NAME, address


def record(
    event_name: str,
    *,
    entity: Entity | User | Any,
    message: str | None = None,
    change: tuple[str, Any, Any] | None = None,
    target: Target | models.Model | None = None,
    target_details: str | None = None,
    ip_address: str | None = None,
) -> AuditEvent:
    """Write one audit event; call it inside the transaction of the change.

    ``entity`` lists the event (an ``Entity``, a user, or a model with ``audit_entity``);
    ``message`` (GitLab's ``custom_message``) or ``change`` (attribute, from, to) says
    what happened; ``target`` is what was acted on (a model row or a ``Target``), shown
    by ``target_details`` (default: its ``str``). ``ip_address`` names the client when
    no request is being served (the realm's door).
    """
    scope = _entity(entity)
    acted_on = _target(target, target_details)
    author_id, author_name, address = _author_and_address()
    address = ip_address or address
    details: dict[str, Any] = {"author_name": _text(author_name)}
    if change is not None:
        attribute, old, new = change
        details.update({"change": attribute, "from": _value(old), "to": _value(new)})
    if message is not None:
        details["custom_message"] = _text(message)
    if acted_on is not None:
        details.update(
            {"target_id": acted_on.id, "target_type": acted_on.type, "target_details": _text(acted_on.details)}
        )
    details.update({"ip_address": address or None, "entity_path": _text(scope.path)})
    return AuditEvent.objects.create(
        author_id=author_id,
        author_name=_text(author_name)[:255],
        entity_type=scope.type,
        entity_id=scope.id,
        entity_path=_text(scope.path),
        event_name=event_name,
        target_type=acted_on.type if acted_on else "",
        target_id=acted_on.id if acted_on else None,
        target_details=_text(acted_on.details) if acted_on else "",
        ip_address=address[:64],
        details=details,
    )


def record_changes(
    event_name: str, *, entity: Entity | User | Any, before: dict[str, Any], after: dict[str, Any], **kwargs
) -> list[AuditEvent]:
    """One event per attribute whose value differs between ``before`` and ``after``
    (GitLab records each changed attribute on its own)."""
    return [
        record(event_name, entity=entity, change=(name, before.get(name), value), **kwargs)
        for name, value in after.items()
        if before.get(name) != value
    ]
