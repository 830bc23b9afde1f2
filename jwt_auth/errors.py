"""Errors of the token realm, in the registry's shape
(``{"errors":[{"code": ..., "message": ...}]}``), not the REST API's."""

from __future__ import annotations

from django.http import HttpResponse, JsonResponse

# GitLab's message: a password may have been refused because the user must use a token.
UNAUTHORIZED_MESSAGE = (
    "HTTP Basic: Access denied. If a password was provided for Git authentication, the password was "
    "incorrect or you're required to use a token instead of a password. If a token was provided, it was "
    "either incorrect, expired, or improperly scoped."
)


class RealmError(Exception):
    """An expected refusal: HTTP status, registry error code and message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> HttpResponse:
        return JsonResponse({"errors": [{"code": self.code, "message": self.message}]}, status=self.status)


class Banned(Exception):
    """Too many failed attempts from this (IP, login): a plain-text 403."""


def unauthorized() -> RealmError:
    return RealmError(401, "UNAUTHORIZED", UNAUTHORIZED_MESSAGE)


def denied(message: str = "access forbidden") -> RealmError:
    return RealmError(403, "DENIED", message)


def unavailable(message: str, status: int = 404) -> RealmError:
    return RealmError(status, "UNAVAILABLE", message)


def invalid_request(message: str, code: str = "INVALID_REQUEST") -> RealmError:
    """A ``POST /jwt/auth`` form the token protocol does not allow (400)."""
    return RealmError(400, code, message)
