"""Errors of the registry client.

Transient faults (connection refused, timeouts, 5xx, 429) are worth retrying with
backoff; permanent ones (unknown repository, deletes disabled, a fresh token refused)
are not.
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base class of every registry client error."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class TransientRegistryError(RegistryError):
    """Connection refused, timeout, 5xx or 429: retry later."""


class PermanentRegistryError(RegistryError):
    """The registry answered and will answer the same again: do not retry."""


class RegistryNotFound(PermanentRegistryError):
    """404 NAME_UNKNOWN / MANIFEST_UNKNOWN."""


class RegistryDeleteDisabled(PermanentRegistryError):
    """405: the registry runs without ``storage.delete.enabled`` (or read-only: then
    ``allow``, the answer's ``Allow`` header, lists no write method)."""

    def __init__(self, message: str, *, status: int | None = None, allow: str | None = None):
        super().__init__(message, status=status)
        self.allow = allow


class RegistryUnauthorized(PermanentRegistryError):
    """401 even with a freshly minted token: our key or issuer is not trusted."""


class TooManyTags(PermanentRegistryError):
    """A tag list is longer than the caller's limit (``RegistryClient.list_tags(limit=)``)."""

    def __init__(self, path: str, limit: int):
        super().__init__(f"{path} has more than {limit} tags")
        self.limit = limit


class TagsNotDeleted(PermanentRegistryError):
    """The registry refused every tag a cleanup tried to delete."""

    # Tag names quoted in the message, at most (a run may try thousands).
    MAX_NAMES = 20

    def __init__(self, path: str, tags: list[str]):
        names = ", ".join(tags[: self.MAX_NAMES]) + (", ..." if len(tags) > self.MAX_NAMES else "")
        super().__init__(f"could not delete tags of {path}: {names}")
        self.tags = tags
