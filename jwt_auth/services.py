"""The token realm's services: identify the caller, grant scopes, issue the token.

Order of checks follows GitLab's ContainerRegistryAuthenticationService: registry
switched off, no registry ability in the credential, scopes granted one by one,
anonymous with nothing granted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from django.conf import settings

from gitlab_core import token_lookup
from gitlab_core.db import fetch_side_by_side
from gitlab_core.text import clean_text
from jwt_auth import credentials, decisions, refresh_tokens, throttle
from jwt_auth.credentials import AuthResult
from jwt_auth.errors import Banned, denied, invalid_request, unauthorized, unavailable
from jwt_auth.scopes import MAX_SCOPES, REGISTRY, REPOSITORY, RealmParams, Scope, parse_scope
from jwt_auth.signals import push_granted
from jwt_auth.tokens import mint_registry_token
from projects import permissions, protection
from projects.image_paths import (
    ImagePath,
    resolution_of,
    resolution_statement,
    resolve_image_paths,
    valid_image_path,
)
from projects.models import Project

logger = logging.getLogger(__name__)

# action -> (credential ability, project ability) pairs, any of which grants it.
_ACTION_RULES = {
    "pull": (
        (credentials.BUILD_READ, permissions.BUILD_READ_CONTAINER_IMAGE),
        (credentials.READ, permissions.READ_CONTAINER_IMAGE),
    ),
    "push": (
        (credentials.BUILD_CREATE, permissions.BUILD_CREATE_CONTAINER_IMAGE),
        (credentials.CREATE, permissions.CREATE_CONTAINER_IMAGE),
    ),
    # GitLab grants registry deletes to Maintainers (admin_container_image), not Developers.
    "delete": (
        (credentials.BUILD_DESTROY, permissions.BUILD_DESTROY_CONTAINER_IMAGE),
        (credentials.ADMIN, permissions.ADMIN_CONTAINER_IMAGE),
    ),
    "*": ((credentials.ADMIN, permissions.ADMIN_CONTAINER_IMAGE),),
}


# The failed-login ban counts bad refresh tokens from one address under this name (no
# username can contain a space or parentheses).
REFRESH_TOKEN_LOGIN = "(refresh token)"
MAX_LOGIN_LENGTH = 255


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int
    issued_at: str
    access: list[dict]
    refresh_token: str | None = None


def identify_caller(*, authorization: str, client_ip: str, scopes: Sequence[str] = ()) -> AuthResult:
    """The caller behind an ``Authorization`` header (anonymous without Basic credentials);
    ``scopes`` as ``authenticate_login`` takes them.

    Raises ``Banned`` while this (client address, canonical login) is banned, ``RealmError`` 401 for bad
    credentials (and counts the failure). A success clears earlier failures.
    """
    try:
        basic = credentials.basic_credentials(authorization)
    except credentials.MalformedCredentials:
        logger.warning("JWT authentication failed", extra={"login": None, "client_address": client_ip})
        raise unauthorized()
    if basic is None:
        return credentials.ANONYMOUS
    login, password = basic
    return authenticate_login(login=login, password=password, client_ip=client_ip, scopes=scopes)


def authenticate_login(*, login: str, password: str, client_ip: str, scopes: Sequence[str] = ()) -> AuthResult:
    """The caller behind a login and password (or token), under the failed-login ban.

    What most requests need is read in one round trip: this pair's ban state, the
    personal access token ``password`` may be (the credential most logins carry), and,
    when ``password`` has a token's shape, the projects of the image paths of
    ``scopes`` (the request's) with that token's user's access levels. When the token
    is the credential, the result carries them for ``grant_access``
    (``AuthResult.resolved_paths``); ``grant_access`` reads any other caller's itself.

    Raises ``Banned`` while this (client address, canonical login) is banned,
    ``RealmError`` 401 for bad credentials (and counts the failure). A success clears
    earlier failures.
    """
    banned, has_failures, token, resolved = False, False, credentials.LOOK_UP, None
    ban_check = throttle.check_statement(ip=client_ip, login=login)
    if login != credentials.CI_JOB_LOGIN:  # first in the order, a CI job token; the ban never counts it
        lookup = token_lookup.lookup_statement(password)
        # A deploy token or a password would have its paths read twice.
        paths = _image_paths(_parsed_scopes(scopes)) if token_lookup.may_be_token(password) else []
        resolution = resolution_statement(paths, user_id=token_lookup.owner_id_sql(password)) if paths else None
        found = iter(fetch_side_by_side([s for s in (ban_check, lookup, resolution) if s is not None]))
        if ban_check is not None:
            banned, has_failures = throttle.state_of(next(found))
        token = token_lookup.token_of(next(found), password)
        if resolution is not None:
            resolved = resolution_of(next(found))
    if banned:
        raise Banned
    # No login is longer (usernames and emails have 255 characters at most).
    result = (
        credentials.authenticate(login, password, personal_access_token=token)
        if len(login) <= MAX_LOGIN_LENGTH
        else None
    )
    if result is None:
        throttle.record_failure(ip=client_ip, login=login)
        logger.warning("JWT authentication failed", extra={"login": login, "client_address": client_ip})
        raise unauthorized()
    if has_failures:
        throttle.record_success(ip=client_ip, login=login)
    if resolved is not None and token is not None and result.personal_access_token is token:
        return replace(result, resolved_paths=(tuple(scopes), resolved))
    return result


def authenticate_refresh_token(*, secret: str, client_ip: str) -> AuthResult:
    """The caller a refresh token stands for. Bad refresh tokens from one address count
    together towards the failed-login ban, which then refuses bad ones with 403; a valid
    one always works (its 192 random bits cannot be guessed, and a stale token retried
    by one client must not lock out the others behind the same address). Raises
    ``Banned`` or ``RealmError`` 401."""
    result = refresh_tokens.authenticate(secret)
    if result is not None:
        return result
    banned, _ = throttle.check(ip=client_ip, login=REFRESH_TOKEN_LOGIN)
    if banned:
        raise Banned
    throttle.record_failure(ip=client_ip, login=REFRESH_TOKEN_LOGIN)
    logger.warning("JWT authentication failed", extra={"login": REFRESH_TOKEN_LOGIN, "client_address": client_ip})
    raise unauthorized()


def authorize_and_issue(
    *, authorization: str, client_ip: str, query: str, scopes: list[str], offline_client_id: str | None = None
) -> IssuedToken:
    """The realm: identify the caller, decide what it gets, sign the token.

    A successful decision is reused for an identical request within
    ``REALM_DECISION_CACHE_SECONDS`` (``jwt_auth.decisions``): only the signature is
    made again. With ``offline_client_id`` (``offline_token=true``) the answer also
    carries a new refresh token for the caller's credential, and the request is always
    decided. Raises what ``identify_caller`` and ``decide`` raise.
    """
    if offline_client_id is not None:
        auth = identify_caller(authorization=authorization, client_ip=client_ip, scopes=scopes)
        issued = issue(decide(auth=auth, scopes=scopes))
        return replace(issued, refresh_token=refresh_tokens.issue(auth, client_id=offline_client_id))
    key = decisions.request_key(authorization, query, client_ip)
    decision = decisions.lookup(key)
    if decision is None:
        started = decisions.begin()
        auth = identify_caller(authorization=authorization, client_ip=client_ip, scopes=scopes)
        decision = decide(auth=auth, scopes=scopes)
        decisions.remember(key, decision, started)
    return issue(decision)


def authorize_form(*, params: RealmParams, client_ip: str) -> IssuedToken:
    """``POST /jwt/auth``: distribution's OAuth2 token request.

    ``grant_type=password`` authenticates ``username`` and ``password`` as Basic
    credentials would be (a token works as the password); with ``access_type=offline``
    the answer carries a new refresh token. ``grant_type=refresh_token`` authenticates
    the ``refresh_token``. Either way the ``scope`` values are decided by the same rules
    as a ``GET``. Raises ``RealmError`` 400 for a request the protocol does not allow,
    and what ``authenticate_login`` and ``decide`` raise.
    """
    grant_type = params.get("grant_type")
    if grant_type == "password":
        login, password = params.get("username"), params.get("password")
        if not login or not password:
            raise invalid_request("username and password are required with grant_type=password")
        if not clean_text(login) or not clean_text(password):
            raise unauthorized()
        auth = authenticate_login(login=login, password=password, client_ip=client_ip, scopes=params.scopes)
        offline = params.get("access_type") == "offline"
    elif grant_type == "refresh_token":
        secret = params.get("refresh_token")
        if not secret:
            raise invalid_request("refresh_token is required with grant_type=refresh_token")
        auth = authenticate_refresh_token(secret=secret, client_ip=client_ip)
        offline = False
    else:
        raise invalid_request("grant_type must be password or refresh_token", code="UNSUPPORTED")
    issued = issue(decide(auth=auth, scopes=params.scopes))
    if not offline:
        return issued
    return replace(issued, refresh_token=refresh_tokens.issue(auth, client_id=params.get("client_id")))


def decide(*, auth: AuthResult, scopes: list[str]) -> decisions.Decision:
    """Grant what ``auth`` may have of ``scopes`` (denials are logged).

    Side effect: a granted ``push`` creates the container repository row if missing.
    Raises ``RealmError``: 404 UNAVAILABLE when the registry is switched off, 403 DENIED
    when the credential has no registry ability or an anonymous caller got nothing.
    """
    if not getattr(settings, "REGISTRY_ENABLED", True):
        raise unavailable("registry not enabled")
    if not auth.abilities & credentials.REGISTRY_ABILITIES:
        raise denied()
    access = grant_access(auth=auth, scopes=scopes)
    if not access and auth.anonymous:
        raise denied()
    return decisions.Decision(
        subject=auth.user.username if auth.user is not None else None,
        auth_type=auth.auth_type,
        user_info=auth.user_info,
        access=tuple(access),
    )


def issue(decision: decisions.Decision) -> IssuedToken:
    """Sign a token for ``decision``. Raises ``KeyConfigurationError`` without a key."""
    issued_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    access = list(decision.access)
    token, expires_in = mint_registry_token(
        access=access, subject=decision.subject, auth_type=decision.auth_type, user_info=decision.user_info
    )
    return IssuedToken(token=token, expires_in=expires_in, issued_at=issued_at, access=access)


def grant_access(*, auth: AuthResult, scopes: list[str], denials: list[dict] | None = None) -> list[dict]:
    """The ``access`` claim: each parsable scope with the actions ``auth`` may perform.

    Malformed scopes, unknown types, invalid paths, unknown projects and unknown actions
    are dropped, and logged (``denials``, when given, collects what was logged).
    Repeated identical scope strings are granted once.
    """
    denials = [] if denials is None else denials
    parsed = _parsed_scopes(scopes)
    if auth.resolved_paths is not None and auth.resolved_paths[0] == tuple(scopes):
        resolved = auth.resolved_paths[1]
    else:
        resolved = resolve_image_paths(_image_paths(parsed), user=auth.user, deploy_token=auth.deploy_token)
    project_abilities: dict[int, frozenset[str]] = {}
    access = []
    for scope in parsed:
        if scope.type == REPOSITORY:
            entry = _repository_entry(auth, scope, resolved.get(scope.name.lower()), project_abilities, denials)
        elif scope.type == REGISTRY:
            entry = _catalog_entry(auth, scope, denials)
        else:
            entry = None
        if entry is not None:
            access.append(entry)
    return access


def _parsed_scopes(scopes: Sequence[str]) -> list[Scope]:
    """The scopes ``grant_access`` reads (the first ``MAX_SCOPES``, each once), parsed;
    malformed ones are left out."""
    parsed = []
    for text in dict.fromkeys(scopes[:MAX_SCOPES]):
        scope = parse_scope(text)
        if scope is not None:
            parsed.append(scope)
    return parsed


def _image_paths(parsed: list[Scope]) -> list[str]:
    """The image paths of parsed scopes that ``grant_access`` resolves: the valid paths
    of the repository scopes, lower-cased, each once."""
    paths = (scope.name.lower() for scope in parsed if scope.type == REPOSITORY)
    return list(dict.fromkeys(path for path in paths if valid_image_path(path)))


def _catalog_entry(auth: AuthResult, scope: Scope, denials: list[dict]) -> dict | None:
    if scope.name == "catalog" and scope.actions == ("*",) and auth.user is not None and auth.user.is_admin:
        return {"type": REGISTRY, "name": "catalog", "actions": ["*"]}
    _log_denied(auth, scope, [], denials, reason="catalog is for instance administrators")
    return None


def _repository_entry(
    auth: AuthResult,
    scope: Scope,
    target: ImagePath | None,
    cache: dict[int, frozenset[str]],
    denials: list[dict],
) -> dict | None:
    if target is None:
        _log_denied(auth, scope, [], denials, reason="invalid path or unknown project")
        return None
    project = target.project
    if project.pk not in cache:
        cache[project.pk] = _abilities_on(auth, project, target)
    granted = [action for action in scope.actions if _allowed(action, auth.abilities, cache[project.pk])]
    if len(granted) != len(scope.actions):
        _log_denied(auth, scope, granted, denials, reason="insufficient permissions")
    if not granted:
        return None
    _check_protection(auth, target, granted)
    if "push" in granted:
        push_granted.send(sender=Project, project=project, name=target.repository_name)
    meta = {"project_path": project.full_path_lower, "project_id": project.pk}
    if target.root_namespace_id is not None:
        meta["root_namespace_id"] = target.root_namespace_id
    return {"type": REPOSITORY, "name": target.path, "actions": granted, "meta": meta}


def _check_protection(auth: AuthResult, target: ImagePath, granted: list[str]) -> None:
    """A push or delete granted on a protected repository fails the whole request, as
    GitLab answers a push to a protected path (``projects.protection``)."""
    wants_push = "push" in granted or "*" in granted
    wants_delete = "delete" in granted or "*" in granted
    if not target.has_protection_rules or (not wants_push and not wants_delete):
        return
    actor = auth.user if auth.user is not None else auth.deploy_token
    refused = protection.refused_actions(actor, target.project, target.path, access_level=target.access_level)
    if wants_push and protection.PUSH in refused:
        raise denied("Pushing to protected repository path forbidden")
    if wants_delete and protection.DELETE in refused:
        raise denied("Deleting from protected repository path forbidden")


def _abilities_on(auth: AuthResult, project: Project, target: ImagePath) -> frozenset[str]:
    # The access level (auth.user's) and the deploy token's reach were resolved with the project.
    if auth.ci_job is not None:
        return permissions.ci_job_abilities(auth.ci_job, project, access_level=target.access_level)
    return permissions.project_abilities(
        auth.deploy_token or auth.user,
        project,
        access_level=target.access_level,
        deploy_token_access=target.deploy_token_access,
    )


def _allowed(action: str, credential: frozenset[str], on_project: frozenset[str]) -> bool:
    return any(c in credential and p in on_project for c, p in _ACTION_RULES.get(action, ()))


def _log_denied(auth: AuthResult, scope: Scope, granted: list[str], denials: list[dict], *, reason: str) -> None:
    extra = {
        "scope_type": scope.type,
        "scope_name": scope.name.lower(),
        "requested_actions": list(scope.actions),
        "granted_actions": granted,
        "actor": auth.actor_label,
        "auth_type": auth.auth_type,
        "reason": reason,
    }
    denials.append(extra)
    logger.warning("Denied container registry permissions", extra=extra)
