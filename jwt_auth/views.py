"""``/jwt/auth`` (the registry's token realm) and ``GET /jwt/jwks`` (public keys).

``GET /jwt/auth`` is GitLab's realm; with ``offline_token=true`` the answer also carries
a ``refresh_token``. ``POST /jwt/auth`` is distribution's OAuth2 token form
(``grant_type=password`` or ``refresh_token``; ``jwt_auth.refresh_tokens``).
``answer`` decides a realm request from its method, query string, ``Authorization``
header, client address and form body. Django's view ``auth`` and the bare WSGI door that production
servers use for this path (``answer_environ``, see ``gitlab_core.doors``) both call it.
Errors are in the registry's shape, not the REST API's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from time import perf_counter

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, HttpResponseNotFound, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from gitlab_core import doors, metrics
from gitlab_core.client_address import client_address
from jwt_auth import services
from jwt_auth.errors import Banned, RealmError, invalid_request, unavailable
from jwt_auth.keys import KeyConfigurationError, jwks
from jwt_auth.scopes import MAX_SCOPES, parse_scope, realm_query
from jwt_auth.throttle import BANNED_MESSAGE

logger = logging.getLogger(__name__)

# Tokens are credentials: no shared cache may keep them (nor the refusals).
NO_STORE = [("Cache-Control", "no-store")]


def answer(method: str, query: str, authorization: str, client_ip: str, body: bytes = b"") -> doors.Answer:
    """A realm request: ``GET`` with the query (GitLab's realm), or ``POST`` with a form
    body (distribution's OAuth2 token request, for password and refresh-token grants).
    Counted in ``jwt_auth_requests_total`` by result and timed in
    ``jwt_auth_request_duration_seconds``."""
    started = perf_counter()
    result = "error"
    try:
        reply, result = _decide(method, query, authorization, client_ip, body)
    finally:
        _COUNTERS[result].inc()
        metrics.JWT_AUTH_DURATION.observe(perf_counter() - started)
    return reply


# One child per result, looked up once: ``labels()`` cost 2.7 us a call, ``inc()`` 1 us.
_COUNTERS = {
    result: metrics.JWT_AUTH_REQUESTS.labels(result)
    for result in ("granted", "denied", "unauthorized", "banned", "error")
}


def _decide(method: str, query: str, authorization: str, client_ip: str, body: bytes) -> tuple[doors.Answer, str]:
    if method == "POST":
        return _answer_form(body, client_ip)
    params = realm_query(query)
    # GitLab routes only GET: any other method is a 404 with no body.
    if method != "GET" or params.service != settings.REGISTRY_SERVICE:
        return (404, [], "text/plain", b""), "denied"
    offline = params.get("offline_token").lower() == "true"
    return _answered(
        lambda: services.authorize_and_issue(
            authorization=authorization,
            client_ip=client_ip,
            query=query,
            scopes=params.scopes,
            offline_client_id=params.get("client_id") if offline else None,
        ),
        params.scopes,
    )


def _answer_form(body: bytes, client_ip: str) -> tuple[doors.Answer, str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return _error(invalid_request("the form is not UTF-8"), NO_STORE), "denied"
    params = realm_query(text)
    if params.service != settings.REGISTRY_SERVICE:
        return (404, [], "text/plain", b""), "denied"
    return _answered(
        lambda: services.authorize_form(params=params, client_ip=client_ip), params.scopes, with_scope=True
    )


def _answered(
    decide: Callable[[], services.IssuedToken], scopes: list[str], *, with_scope: bool = False
) -> tuple[doors.Answer, str]:
    try:
        issued = decide()
    except Banned:
        return (403, [], "text/plain; charset=utf-8", BANNED_MESSAGE.encode()), "banned"
    except RealmError as error:
        return _error(error, NO_STORE), "unauthorized" if error.status == 401 else "denied"
    except KeyConfigurationError:
        logger.exception("registry token signing key unusable")
        return _error(unavailable("token signing key not configured", status=503), []), "error"
    except (OperationalError, InterfaceError) as exc:
        # The registry shows this to the client, which retries the login.
        logger.warning("token realm: database unavailable: %s", exc.__class__.__name__)
        return _error(unavailable("service temporarily unavailable", status=503), NO_STORE), "error"
    result = _grant_result(scopes, issued.access)
    if issued.refresh_token is None and not with_scope:
        return (200, NO_STORE, "application/json", _token_body(issued)), result
    return doors.json_answer(200, _oauth_body(issued), NO_STORE), result


def _grant_result(scopes: list[str], access: list[dict]) -> str:
    """``granted`` when the token carries every action asked for, else ``denied`` (GitLab
    answers 200 with fewer actions, or none, and the registry then refuses)."""
    if len(scopes) > MAX_SCOPES:  # the rest were not even read
        return "denied"
    granted = {(entry["type"], entry["name"].lower(), action) for entry in access for action in entry["actions"]}
    for text in scopes:
        scope = parse_scope(text)
        if scope is None or any((scope.type, scope.name.lower(), action) not in granted for action in scope.actions):
            return "denied"
    return "granted"


def _token_body(issued: services.IssuedToken) -> bytes:
    """``{"token", "access_token", "expires_in", "issued_at"}``. Written directly: the
    token is base64url and dots, the time digits and letters, so nothing needs escaping,
    and JSON-encoding two copies of a 3 KB token was a tenth of a reused request."""
    token = issued.token
    return (
        f'{{"token": "{token}", "access_token": "{token}", '
        f'"expires_in": {int(issued.expires_in)}, "issued_at": "{issued.issued_at}"}}'
    ).encode()


def _oauth_body(issued: services.IssuedToken) -> dict:
    """The answer with the granted ``scope`` (space separated, as the OAuth2 token
    response has it) and, when one was issued, the ``refresh_token``."""
    body = {
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": int(issued.expires_in),
        "issued_at": issued.issued_at,
        "scope": " ".join(f"{entry['type']}:{entry['name']}:{','.join(entry['actions'])}" for entry in issued.access),
    }
    if issued.refresh_token is not None:
        body["refresh_token"] = issued.refresh_token
    return body


def _error(error: RealmError, headers: list[tuple[str, str]]) -> doors.Answer:
    return doors.json_answer(error.status, {"errors": [{"code": error.code, "message": error.message}]}, headers)


# A token request form is a few hundred bytes; a refresh token, a password and fifty
# scopes fit well within this.
MAX_FORM_BYTES = 64 * 1024


def answer_environ(environ) -> doors.Answer:
    method = environ.get("REQUEST_METHOD", "")
    body = b""
    if method == "POST":
        body = doors.read_body(environ, MAX_FORM_BYTES)
        if body is None:
            return _error(invalid_request("the form is too large", code="TOO_LARGE"), NO_STORE)
    return answer(
        method,
        environ.get("QUERY_STRING", ""),
        environ.get("HTTP_AUTHORIZATION", ""),
        client_address(environ),
        body,
    )


@csrf_exempt
def auth(request):
    # The same environ the bare door gets: the view reads the body from wsgi.input.
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
