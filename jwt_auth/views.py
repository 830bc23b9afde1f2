"""``GET /jwt/auth`` (the registry's token realm) and ``GET /jwt/jwks`` (public keys).

Plain Django views rather than DRF: the realm is the hottest path of the service and
answers in the registry's error shape, not the REST API's.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpResponse, HttpResponseNotFound, JsonResponse

from jwt_auth import services
from jwt_auth.errors import Banned, RealmError, unavailable
from jwt_auth.keys import KeyConfigurationError, jwks
from jwt_auth.scopes import realm_query
from jwt_auth.throttle import BANNED_MESSAGE

logger = logging.getLogger(__name__)


def auth(request):
    service, scopes = realm_query(request.META.get("QUERY_STRING", ""))
    # GitLab routes only GET; anything else (POST included) is a 404 with no body.
    if request.method != "GET" or service != settings.REGISTRY_SERVICE:
        return HttpResponseNotFound(b"", content_type="text/plain")
    try:
        issued = services.authorize_and_issue(
            authorization=request.META.get("HTTP_AUTHORIZATION", ""),
            client_ip=request.META.get("REMOTE_ADDR", ""),
            query=request.META.get("QUERY_STRING", ""),
            scopes=scopes,
        )
    except Banned:
        return HttpResponse(BANNED_MESSAGE, status=403, content_type="text/plain; charset=utf-8")
    except RealmError as error:
        return _no_store(error.response())
    except KeyConfigurationError:
        logger.exception("registry token signing key unusable")
        return unavailable("token signing key not configured", status=503).response()
    body = {
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": issued.expires_in,
        "issued_at": issued.issued_at,
    }
    return _no_store(JsonResponse(body))


def jwks_view(request):
    if request.method != "GET":
        return HttpResponseNotFound(b"", content_type="text/plain")
    try:
        document = jwks()
    except KeyConfigurationError:
        logger.exception("registry token signing key unusable")
        return unavailable("token signing key not configured", status=503).response()
    return JsonResponse(document)


def _no_store(response: HttpResponse) -> HttpResponse:
    # Tokens are credentials: no shared cache may keep them.
    response["Cache-Control"] = "no-store"
    return response
