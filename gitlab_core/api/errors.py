"""GitLab's error shapes for the REST API, rendered by one DRF exception handler.

A ``ServiceError`` (``gitlab_core.errors``) raised anywhere below a view is answered as it
is: ``{"message": ...}`` or ``{"error": ...}`` with its status and headers. DRF's and
Django's own request errors get the same shapes here.
"""

from __future__ import annotations

import logging
import sys

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import JsonResponse
from django.views import csrf, defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from gitlab_core.errors import DATABASE_UNAVAILABLE, ServiceError

logger = logging.getLogger(__name__)


def insufficient_scope(scope: str = "api read_api") -> ServiceError:
    """403 for a token without the scopes a request needs (``api``/``read_api``, or
    ``sudo`` to act as another user): the API names them."""
    description = "The request requires higher privileges than provided by the access token."
    return ServiceError(
        403,
        {"error": "insufficient_scope", "error_description": description, "scope": scope},
        headers={
            "WWW-Authenticate": f'Bearer realm="GitLab", error="insufficient_scope", '
            f'error_description="{description}", scope="{scope}"'
        },
    )


def exception_handler(exc, context):
    if isinstance(exc, ServiceError):
        return Response(exc.body, status=exc.status, headers=exc.headers)
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


API_PREFIX = "/api/v4/"


def is_api_request(request) -> bool:
    return request.path_info.startswith(API_PREFIX) or request.path.startswith(API_PREFIX)


@csrf_exempt
def api_not_found(request, *args, **kwargs):
    """Any method on an unknown ``/api/v4`` path: GitLab's 404 (the API authenticates by
    token, so Django's CSRF check, which would answer an HTML 403, does not apply)."""
    return JsonResponse({"error": "404 Not Found"}, status=404)


def page_not_found(request, exception=None):
    return JsonResponse({"error": "404 Not Found"}, status=404)


# Django's own error pages are HTML; an ``/api/v4`` client gets GitLab's JSON instead.
def bad_request_page(request, exception=None):
    if is_api_request(request):
        return JsonResponse({"message": "400 Bad request"}, status=400)
    return defaults.bad_request(request, exception)


def permission_denied_page(request, exception=None):
    if is_api_request(request):
        return JsonResponse({"message": "403 Forbidden"}, status=403)
    return defaults.permission_denied(request, exception)


def server_error_page(request):
    """``handler500``: an unavailable or stalled database (lost connection, connect or
    statement timeout) is a 503 in GitLab's shape, wherever it was raised (middleware
    included); anything else is a 500, in GitLab's JSON under ``/api/v4``. Django calls
    it while handling the exception, so ``sys.exc_info()`` holds it."""
    if isinstance(sys.exc_info()[1], DATABASE_UNAVAILABLE):
        return JsonResponse({"message": "503 Service Unavailable"}, status=503)
    if is_api_request(request):
        return JsonResponse({"message": "500 Internal Server Error"}, status=500)
    return defaults.server_error(request)


def csrf_failure(request, reason: str = ""):
    """``CSRF_FAILURE_VIEW``: no API view needs the check, but should one ever fail it the
    answer is still JSON."""
    if is_api_request(request):
        return JsonResponse({"message": "403 Forbidden"}, status=403)
    return csrf.csrf_failure(request, reason)
