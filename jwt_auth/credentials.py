"""Who is calling ``/jwt/auth``: Basic credentials resolved in GitLab's order.

CI job token (login ``gitlab-ci-token``), personal access token (any login), deploy
token (login must match), password (last: it is the expensive check). The first match
wins; no match is a failure (401). Secrets are looked up by digest and compared in
constant time; they are never logged.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db.models import Q

from gitlab_core.models import PAT_SCOPES, PersonalAccessToken, User
from gitlab_core.text import clean_text
from gitlab_core.token_lookup import find_personal_access_token, touch_last_used
from projects.image_paths import ImagePath
from projects.models import CiJob, DeployToken
from projects.selectors import deploy_token_by_secret, find_running_ci_job

CI_JOB_LOGIN = "gitlab-ci-token"

# Credential ("authentication") abilities, intersected later with project permissions.
READ = "read_container_image"
CREATE = "create_container_image"
ADMIN = "admin_container_image"
BUILD_READ = "build_read_container_image"
BUILD_CREATE = "build_create_container_image"
BUILD_DESTROY = "build_destroy_container_image"
REGISTRY_ABILITIES = frozenset({READ, CREATE, ADMIN, BUILD_READ, BUILD_CREATE, BUILD_DESTROY})
FULL_ABILITIES = frozenset({READ, CREATE, ADMIN})
BUILD_ABILITIES = frozenset({BUILD_READ, BUILD_CREATE, BUILD_DESTROY})

_SCOPE_ABILITIES = {
    "api": FULL_ABILITIES,
    "read_api": frozenset({READ}),
    "read_registry": frozenset({READ}),
    "write_registry": frozenset({CREATE}),
}


def abilities_for_scopes(scopes: list[str]) -> frozenset[str]:
    """Union of the registry abilities each token scope gives."""
    result: set[str] = set()
    for scope in scopes:
        result |= _SCOPE_ABILITIES.get(scope, frozenset())
    return frozenset(result)


@dataclass
class AuthResult:
    """The resolved caller. ``auth_type`` is GitLab's credential type string."""

    auth_type: str
    user: User | None = None
    deploy_token: DeployToken | None = None
    ci_job: CiJob | None = None
    abilities: frozenset[str] = field(default_factory=frozenset)
    # The personal access token behind a ``personal_access_token`` result.
    personal_access_token: PersonalAccessToken | None = None
    # The scopes of the request and what their image paths resolved to for this caller
    # (projects and access levels), when they were read in the same round trip as the
    # credential (``services.authenticate_login``); None: not read yet.
    resolved_paths: tuple[tuple[str, ...], dict[str, ImagePath]] | None = None

    @property
    def anonymous(self) -> bool:
        return self.user is None and self.deploy_token is None and self.ci_job is None

    @property
    def actor_label(self) -> str:
        """Who, for logs: a username, a deploy token id or a job id; never a secret."""
        if self.user is not None:
            return self.user.username
        if self.deploy_token is not None:
            return f"deploy_token:{self.deploy_token.pk}"
        if self.ci_job is not None:
            return f"ci_job:{self.ci_job.pk}"
        return "anonymous"

    @property
    def user_info(self) -> dict | None:
        """The nested ``user`` token's payload, as GitLab builds it."""
        if self.user is not None:
            return {"token_type": self.auth_type, "username": self.user.username, "user_id": self.user.pk}
        if self.deploy_token is not None:
            return {
                "token_type": self.auth_type,
                "username": self.deploy_token.username,
                "deploy_token_id": self.deploy_token.pk,
            }
        return None


ANONYMOUS = AuthResult(auth_type="none", abilities=frozenset({READ}))


class MalformedCredentials(Exception):
    """The Authorization header is Basic but cannot be decoded."""


def basic_credentials(header: str) -> tuple[str, str] | None:
    """``(login, password)`` from a Basic ``Authorization`` header; None when the header
    is absent or another scheme. Raises MalformedCredentials for broken Basic values."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        # ValueError: characters outside ASCII, which base64 refuses before decoding.
        raise MalformedCredentials
    login, sep, password = decoded.partition(":")
    # A NUL cannot be in any login or secret, and PostgreSQL refuses it in a query.
    if not sep or not clean_text(decoded):
        raise MalformedCredentials
    return login, password


# ``authenticate``'s default: it looks the personal access token up itself.
LOOK_UP = object()


def authenticate(login: str, password: str, *, personal_access_token=LOOK_UP) -> AuthResult | None:
    """Resolve Basic credentials in GitLab's order; None when nothing matches.
    ``personal_access_token``: what ``gitlab_core.token_lookup`` found for ``password``
    (a token or None), when the caller looked it up already."""
    if not password:
        return None
    return (
        _ci_job(login, password)
        or _personal_access_token(password, personal_access_token)
        or _deploy_token(login, password)
        or _password(login, password)
    )


def _ci_job(login: str, password: str) -> AuthResult | None:
    if login != CI_JOB_LOGIN:
        return None
    job = find_running_ci_job(password)
    if job is None:
        return None
    if job.user is not None and not job.user.can_log_in:
        return None
    return AuthResult(
        auth_type="build" if job.user is not None else "ci", user=job.user, ci_job=job, abilities=BUILD_ABILITIES
    )


def _personal_access_token(password: str, found) -> AuthResult | None:
    token = find_personal_access_token(password) if found is LOOK_UP else found
    return None if token is None else personal_access_token_result(token)


def personal_access_token_result(token: PersonalAccessToken) -> AuthResult | None:
    """The caller a personal access token stands for, while it and its user may log in."""
    if not token.active or not token.user.can_log_in:
        return None
    if not any(scope in PAT_SCOPES for scope in token.scopes):
        return None
    touch_last_used(token)
    return AuthResult(
        auth_type="personal_access_token",
        user=token.user,
        abilities=abilities_for_scopes(token.scopes),
        personal_access_token=token,
    )


def _deploy_token(login: str, password: str) -> AuthResult | None:
    token = deploy_token_by_secret(password)
    if token is None or token.username != login:
        return None
    return deploy_token_result(token)


def deploy_token_result(token: DeployToken) -> AuthResult | None:
    """The caller a deploy token stands for, while it is active."""
    if not token.active:
        return None
    return AuthResult(auth_type="deploy_token", deploy_token=token, abilities=abilities_for_scopes(token.scopes))


def _password(login: str, password: str) -> AuthResult | None:
    if not settings.PASSWORD_AUTHENTICATION_ENABLED_FOR_GIT:
        return None
    user = User.objects.filter(Q(username__iexact=login) | Q(email__iexact=login)).first()
    if user is None:
        # Hash anyway, so that response time does not tell which logins exist.
        make_password(password)
        return None
    if not user.check_password(password):
        return None
    return password_user_result(user)


def password_user_result(user: User) -> AuthResult | None:
    """The caller a checked password stands for: GitLab refuses the password of a
    blocked user, of a user with two-factor authentication, and when password
    authentication for Git is off."""
    if not settings.PASSWORD_AUTHENTICATION_ENABLED_FOR_GIT:
        return None
    if not user.can_log_in or user.two_factor_enabled:
        return None
    return AuthResult(auth_type="gitlab_or_ldap", user=user, abilities=FULL_ABILITIES)
