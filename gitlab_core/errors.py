"""The one exception type for expected failures, with the helpers that build it.

Services, selectors and views raise ``ServiceError``; it carries the HTTP status and
GitLab's body (``{"message": ...}`` or ``{"error": ...}``). The REST API renders it as it
is (``gitlab_core.api.errors.exception_handler``); commands print its message.
"""

from __future__ import annotations

from django.db import InterfaceError, OperationalError

# Database errors that mean "unavailable, try again": a lost or refused connection, a
# connect timeout, a statement cancelled by its timeout (PostgreSQL's query_canceled is an
# OperationalError). The doors and the Django views answer them 503, never 500.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)


class ServiceError(Exception):
    """An expected failure: the status and GitLab's body to answer with."""

    def __init__(self, status: int, body: dict, headers: dict | None = None):
        super().__init__(body)
        self.status = status
        self.body = body
        self.headers = headers or {}


def bad_request(message) -> ServiceError:
    """400 ``{"message": ...}`` (a string or a field -> [problems] dict)."""
    return ServiceError(400, {"message": message})


def invalid_params(*problems: str) -> ServiceError:
    """400 ``{"error": "a is missing, b is invalid"}`` (request-level validation)."""
    return ServiceError(400, {"error": ", ".join(problems)})


def unauthorized() -> ServiceError:
    return ServiceError(401, {"message": "401 Unauthorized"})


def forbidden(message: str = "403 Forbidden") -> ServiceError:
    return ServiceError(403, {"message": message})


def not_found(thing: str | None = None) -> ServiceError:
    return ServiceError(404, {"message": f"404 {thing} Not Found" if thing else "404 Not found"})


def method_not_allowed() -> ServiceError:
    return ServiceError(405, {"message": "405 Method Not Allowed"})


def conflict(message: str) -> ServiceError:
    return ServiceError(409, {"message": message})
