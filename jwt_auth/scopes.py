"""Parsing the ``scope`` parameters of ``/jwt/auth`` (image paths are checked and mapped
to projects by ``projects.image_paths``).

``repository:<path>:<actions>`` and ``registry:catalog:*`` are understood; anything
malformed is dropped, never an error (GitLab answers some of them with a 500).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl

MAX_SCOPES = 50

REPOSITORY = "repository"
REGISTRY = "registry"


@dataclass(frozen=True)
class Scope:
    type: str
    name: str
    actions: tuple[str, ...]

    @property
    def text(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


def scopes_from_query_string(query_string: str) -> list[str]:
    """Every ``scope`` value, repeated or space separated, in order.

    Read from the raw query string because ``QueryDict.get`` keeps only the last one.
    """
    return realm_query(query_string).scopes


# Parameters of the distribution token protocol other than ``scope`` and ``service``
# (``account`` is accepted and ignored, as by GitLab).
_FORM_FIELDS = frozenset(
    {"offline_token", "client_id", "grant_type", "access_type", "refresh_token", "username", "password"}
)


@dataclass
class RealmParams:
    """The parameters of a realm request: the query of a ``GET`` or the form of a ``POST``."""

    service: str | None = None
    scopes: list[str] = field(default_factory=list)
    # The last value of each of ``_FORM_FIELDS`` that was given.
    fields: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> str:
        return self.fields.get(name, "")


def realm_query(query_string: str) -> RealmParams:
    """A realm request's parameters in one pass: the last ``service`` value (as
    ``QueryDict.get`` gives it), every ``scope`` value in order, and the last value of
    each other protocol field."""
    params = RealmParams()
    for key, value in parse_qsl(query_string, keep_blank_values=True, errors="replace"):
        if key == "scope":
            params.scopes.extend(value.split())
        elif key == "service":
            params.service = value
        elif key in _FORM_FIELDS:
            params.fields[key] = value
    return params


def parse_scope(text: str) -> Scope | None:
    """``type:name:actions`` -> Scope, or None when it is malformed.

    Split as GitLab does, into at most three fields: a ``:`` after the second one stays
    in the actions (where it makes an unknown action, which is dropped later).
    """
    type_, sep, rest = text.partition(":")
    name, sep2, actions = rest.partition(":")
    if not sep or not sep2 or not type_ or not name or not actions:
        return None
    parsed = tuple(a for a in actions.split(",") if a)
    if not parsed:
        return None
    return Scope(type=type_, name=name, actions=parsed)
