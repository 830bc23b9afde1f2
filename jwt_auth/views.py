"""``GET /jwt/auth`` (the registry's token realm) and ``GET /jwt/jwks`` (public keys).

``answer`` decides a realm request from its method, query string, ``Authorization``
header and client address. Django's view ``auth`` and the bare WSGI door that production
servers use for this path (``answer_environ``, see ``gitlab_core.doors``) both call it.
Errors are in the registry's shape, not the REST API's.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, HttpResponseNotFound, JsonResponse

from gitlab_core import doors
from gitlab_core.client_address import client_address
from jwt_auth import services
from jwt_auth.errors import Banned, RealmError, unavailable
from jwt_auth.keys import KeyConfigurationError, jwks
from jwt_auth.scopes import realm_query
from jwt_auth.throttle import BANNED_MESSAGE

logger = logging.getLogger(__name__)

# Tokens are credentials: no shared cache may keep them (nor the refusals).
NO_STORE = [("Cache-Control", "no-store")]


def answer(method: str, query: str, authorization: str, client_ip: str) -> doors.Answer:
    service, scopes = realm_query(query)
    # GitLab routes only GET; anything else (POST included) is a 404 with no body.
    if method != "GET" or service != settings.REGISTRY_SERVICE:
        return 404, [], "text/plain", b""
    try:
        issued = services.authorize_and_issue(
            authorization=authorization, client_ip=client_ip, query=query, scopes=scopes
        )
    except Banned:
        return 403, [], "text/plain; charset=utf-8", BANNED_MESSAGE.encode()
    except RealmError as error:
        return _error(error, NO_STORE)
    except KeyConfigurationError:
        logger.exception("registry token signing key unusable")
        return _error(unavailable("token signing key not configured", status=503), [])
    except (OperationalError, InterfaceError) as exc:
        # The registry shows this to the client, which retries the login.
        logger.warning("token realm: database unavailable: %s", exc.__class__.__name__)
        return _error(unavailable("service temporarily unavailable", status=503), NO_STORE)
    return 200, NO_STORE, "application/json", _token_body(issued)


def _token_body(issued: services.IssuedToken) -> bytes:
    """``{"token", "access_token", "expires_in", "issued_at"}``. Written directly: the
    token is base64url and dots, the time digits and letters, so nothing needs escaping,
    and JSON-encoding two copies of a 3 KB token was a tenth of a reused request."""
    token = issued.token
    return (
        f'{{"token": "{token}", "access_token": "{token}", '
        f'"expires_in": {int(issued.expires_in)}, "issued_at": "{issued.issued_at}"}}'
    ).encode()


def _error(error: RealmError, headers: list[tuple[str, str]]) -> doors.Answer:
    return doors.json_answer(error.status, {"errors": [{"code": error.code, "message": error.message}]}, headers)


def answer_environ(environ) -> doors.Answer:
    return answer(
        environ.get("REQUEST_METHOD", ""),
        environ.get("QUERY_STRING", ""),
        environ.get("HTTP_AUTHORIZATION", ""),
        client_address(environ),
    )


def auth(request):
    status, headers, content_type, body = answer_environ(request.META)
    response = HttpResponse(body, status=status, content_type=content_type)
    for name, value in headers:
        response[name] = value
    return response


def jwks_view(request):
    if request.method != "GET":
        return HttpResponseNotFound(b"", content_type="text/plain")
    try:
        document = jwks()
    except KeyConfigurationError:
        logger.exception("registry token signing key unusable")
        return unavailable("token signing key not configured", status=503).response()
    return JsonResponse(document)
