"""GitLab's error shapes for the REST API, rendered by one DRF exception handler.

Raise ``ApiError`` (or one of its helpers) anywhere below a view; it becomes
``{"message": ...}`` or ``{"error": ...}`` with the right status.
"""

from __future__ import annotations

import logging

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An expected failure with GitLab's body shape."""

    def __init__(self, status: int, body: dict, headers: dict | None = None):
        super().__init__(body)
        self.status = status
        self.body = body
        self.headers = headers or {}

    def response(self) -> Response:
        return Response(self.body, status=self.status, headers=self.headers)


def bad_request(message) -> ApiError:
    """400 ``{"message": ...}`` (a string or a field -> [problems] dict)."""
    return ApiError(400, {"message": message})


def invalid_params(*problems: str) -> ApiError:
    """400 ``{"error": "a is missing, b is invalid"}`` (request-level validation)."""
    return ApiError(400, {"error": ", ".join(problems)})


def unauthorized() -> ApiError:
    return ApiError(401, {"message": "401 Unauthorized"})


def forbidden(message: str = "403 Forbidden") -> ApiError:
    return ApiError(403, {"message": message})


def not_found(thing: str | None = None) -> ApiError:
    return ApiError(404, {"message": f"404 {thing} Not Found" if thing else "404 Not found"})


def conflict(message: str) -> ApiError:
    return ApiError(409, {"message": message})


def insufficient_scope() -> ApiError:
    return ApiError(
        403,
        {
            "error": "insufficient_scope",
            "error_description": "The request requires higher privileges than provided by the access token.",
            "scope": "api read_api",
        },
        headers={
            "WWW-Authenticate": 'Bearer realm="GitLab", error="insufficient_scope", '
            'error_description="The request requires higher privileges than provided by the access token.", '
            'scope="api read_api"'
        },
    )


def exception_handler(exc, context):
    if isinstance(exc, ApiError):
        return exc.response()
    if isinstance(exc, RequestDataTooBig):
        return Response({"error": "The request body is too large"}, status=413)
    if isinstance(exc, SuspiciousOperation):
        # Too many form fields and similar: Django refuses to read the body.
        return Response({"error": "The request body could not be read"}, status=400)
    if isinstance(exc, drf_exceptions.ParseError):
        return Response({"error": "The request body is not valid JSON"}, status=400)
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        return Response({"error": f"The content type {exc.detail} is not supported"}, status=415)
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        return Response({"message": "405 Method Not Allowed"}, status=405)
    if isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
        return Response({"message": "401 Unauthorized"}, status=401)
    if isinstance(exc, drf_exceptions.PermissionDenied):
        return Response({"message": "403 Forbidden"}, status=403)
    if isinstance(exc, drf_exceptions.NotFound):
        return Response({"message": "404 Not found"}, status=404)
    if isinstance(exc, drf_exceptions.Throttled):
        return Response({"message": "429 Too Many Requests"}, status=429)
    if isinstance(exc, drf_exceptions.APIException):
        return Response({"message": str(exc.detail)}, status=exc.status_code)
    return None


def api_not_found(request, *args, **kwargs):
    return JsonResponse({"error": "404 Not Found"}, status=404)


def page_not_found(request, exception=None):
    return JsonResponse({"error": "404 Not Found"}, status=404)
