"""Writes to users, personal access tokens and the application settings.

Every service validates its own input (the API and the management commands share the
rules) and raises ``ServiceError`` with GitLab's body shape; nothing is written on failure.
"""

from __future__ import annotations

import datetime as dt
import re

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from gitlab_core import audit
from gitlab_core.errors import bad_request, conflict, invalid_params
from gitlab_core.models import PAT_SCOPES, ApplicationSettings, PersonalAccessToken, User
from gitlab_core.signals import (
    cleanup_policy_defaults_submitted,
    send_access_changed,
    top_level_path_taken,
    user_created,
)
from gitlab_core.text import clean_text

USERNAME_RE = re.compile(r"\A[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\Z")
USERNAME_PROBLEM = (
    "can contain only letters, digits, '_', '-' and '.'. Cannot start or end with '-' or '.', "
    "end in '.git' or end in '.atom'"
)
MAX_NAME_LENGTH = 255
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128
PAT_DEFAULT_LIFETIME_DAYS = 365
PAT_MAX_LIFETIME_DAYS = 400
ROTATION_DEFAULT_LIFETIME_DAYS = 7
ROTATION_MAX_LIFETIME_DAYS = 365


def valid_path(value: str) -> bool:
    """GitLab's rule for usernames and group/project paths."""
    lowered = value.lower()
    return bool(USERNAME_RE.match(value)) and not lowered.endswith((".git", ".atom"))


def username_taken(username: str) -> bool:
    """Whether a user has ``username`` (in any case), or another app holds it as a top-level
    path (a personal namespace shares the top level with groups, so a group blocks it too)."""
    if User.objects.filter(username__iexact=username).exists():
        return True
    return any(taken for _, taken in top_level_path_taken.send(sender=User, path=username.lower()))


def _check_new_user(*, username: str, email: str, name: str, password: str | None) -> None:
    problems: dict[str, list[str]] = {}
    if not valid_path(username) or len(username) > MAX_NAME_LENGTH:
        problems["username"] = [USERNAME_PROBLEM]
    try:
        validate_email(email)
    except ValidationError:
        problems["email"] = ["is invalid"]
    if not name.strip():
        problems["name"] = ["can't be blank"]
    if password is not None:
        if len(password) < MIN_PASSWORD_LENGTH:
            problems["password"] = [f"is too short (minimum is {MIN_PASSWORD_LENGTH} characters)"]
        elif len(password) > MAX_PASSWORD_LENGTH:
            problems["password"] = [f"is too long (maximum is {MAX_PASSWORD_LENGTH} characters)"]
    if problems:
        raise bad_request(problems)
    if User.objects.filter(email__iexact=email).exists():
        raise conflict("Email has already been taken")
    if username_taken(username):
        raise conflict("Username has already been taken")


def create_user(
    *,
    username: str,
    email: str,
    name: str,
    password: str | None,
    admin: bool = False,
    can_create_group: bool = True,
    projects_limit: int | None = None,
    external: bool = False,
    note: str | None = None,
) -> User:
    """Create a user; ``projects`` adds its personal namespace (kind ``user``, path =
    username) in the same transaction, through ``signals.user_created``.

    ``password=None`` leaves the account without a usable password (GitLab's
    ``reset_password`` / ``force_random_password``). Raises ``ServiceError``: 400 for invalid
    values, 409 when the username or email is taken.
    """
    _check_new_user(username=username, email=email, name=name, password=password)
    if projects_limit is None:
        projects_limit = ApplicationSettings.current().default_projects_limit
    user = User(
        username=username,
        email=email.lower(),
        name=name,
        can_create_group=can_create_group,
        projects_limit=projects_limit,
        external=external,
        note=note,
    )
    user.is_superuser = admin
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
            user_created.send(sender=User, user=user)
            audit.record(
                "user_created",
                entity=user,
                target=user,
                target_details=user.username,
                message="Created administrator" if admin else "Created user",
            )
    except IntegrityError:
        # A concurrent request took the name between the check and the insert.
        raise conflict("Username has already been taken")
    return user


# --- personal access tokens ---------------------------------------------------------------


def _check_token_expiry(expires_at: dt.date, *, max_days: int) -> None:
    today = timezone.now().date()
    if expires_at <= today:
        raise bad_request({"expires_at": ["must be in the future"]})
    latest = today + dt.timedelta(days=max_days)
    if expires_at > latest:
        raise bad_request({"expires_at": [f"must be before {latest.isoformat()}"]})


def check_token_scopes(scopes: list[str]) -> None:
    """400 unless ``scopes`` is a non-empty list of known personal-access-token scopes."""
    if not scopes or any(scope not in PAT_SCOPES for scope in scopes):
        raise invalid_params("scopes does not have a valid value")


def create_personal_access_token(
    *,
    user: User,
    name: str,
    scopes: list[str],
    expires_at: dt.date | None = None,
    description: str | None = None,
) -> tuple[PersonalAccessToken, str]:
    """Create a token for ``user``; returns it with its secret (shown only this once).

    ``expires_at`` defaults to a year from today and may be at most 400 days ahead.
    Raises ``ServiceError`` (400) for a blank name, unknown scopes or a bad date.
    """
    if not name.strip() or len(name) > MAX_NAME_LENGTH or not clean_text(name):
        raise invalid_params("name is missing" if not name.strip() else "name is invalid")
    check_token_scopes(scopes)
    if expires_at is None:
        expires_at = timezone.now().date() + dt.timedelta(days=PAT_DEFAULT_LIFETIME_DAYS)
    _check_token_expiry(expires_at, max_days=PAT_MAX_LIFETIME_DAYS)
    token = PersonalAccessToken(
        user=user, name=name, scopes=list(dict.fromkeys(scopes)), expires_at=expires_at, description=description
    )
    secret = token.set_secret()
    with transaction.atomic():
        token.save()
        audit.record(
            "personal_access_token_created",
            entity=user,
            target=token,
            message=f"Created personal access token with id {token.pk}",
        )
    return token, secret


def _token_family(token: PersonalAccessToken) -> list[int]:
    """Ids of every token linked to ``token`` by rotation, both directions."""
    ids = {token.pk}
    node = token
    while node.previous_id is not None and node.previous_id not in ids:
        ids.add(node.previous_id)
        node = PersonalAccessToken.objects.get(pk=node.previous_id)
    frontier = [token.pk]
    while frontier:
        frontier = list(
            PersonalAccessToken.objects.filter(previous_id__any=frontier)
            .exclude(pk__any=ids)
            .values_list("pk", flat=True)
        )
        ids.update(frontier)
    return sorted(ids)


def _already_revoked():
    return bad_request("400 Bad request - Token already revoked")


def rotate_personal_access_token(
    *, token: PersonalAccessToken, expires_at: dt.date | None = None
) -> tuple[PersonalAccessToken, str]:
    """Revoke ``token`` and issue its successor (same user, name and scopes).

    ``expires_at`` defaults to a week from today, at most a year ahead. Rotating a token
    that was already rotated means its secret leaked: like GitLab, the whole token family
    is revoked, and the call fails with 400.
    """
    if expires_at is None:
        expires_at = timezone.now().date() + dt.timedelta(days=ROTATION_DEFAULT_LIFETIME_DAYS)
    _check_token_expiry(expires_at, max_days=ROTATION_MAX_LIFETIME_DAYS)
    with transaction.atomic():
        current = PersonalAccessToken.objects.select_for_update().get(pk=token.pk)
        if current.revoked:
            reused = PersonalAccessToken.objects.filter(previous=current).exists()
            if reused:
                PersonalAccessToken.objects.filter(pk__any=_token_family(current)).update(revoked=True)
                audit.record(
                    "personal_access_token_family_revoked",
                    entity=current.user,
                    target=current,
                    message=f"Revoked every token rotated from or to personal access token with id {current.pk}: "
                    "a revoked token was rotated again",
                )
                send_access_changed(PersonalAccessToken)
            failure = _already_revoked()
        else:
            failure = None
            current.revoked = True
            current.save(update_fields=["revoked"])
            successor = PersonalAccessToken(
                user_id=current.user_id,
                name=current.name,
                description=current.description,
                scopes=current.scopes,
                expires_at=expires_at,
                previous=current,
            )
            secret = successor.set_secret()
            successor.save()
            audit.record(
                "personal_access_token_rotated",
                entity=current.user,
                target=successor,
                message=f"Rotated personal access token with id {current.pk} to a new one with id {successor.pk}",
            )
    # Raised after the commit: the family revocation above must stick.
    if failure is not None:
        raise failure
    return successor, secret


def revoke_personal_access_token(*, token: PersonalAccessToken) -> None:
    """Revoke ``token``; it answers 401 from now on. 400 if it was already revoked."""
    with transaction.atomic():
        changed = PersonalAccessToken.objects.filter(pk=token.pk, revoked=False).update(revoked=True)
        if not changed:
            raise _already_revoked()
        token.revoked = True
        _record_revocation(token)
    send_access_changed(PersonalAccessToken)


def revoke_personal_access_tokens(*, tokens) -> int:
    """Revoke the active tokens among ``tokens`` (a queryset: the admin's selection);
    returns how many were revoked."""
    with transaction.atomic():
        active = list(tokens.filter(revoked=False).select_related("user").select_for_update(of=("self",)))
        PersonalAccessToken.objects.filter(pk__any=[t.pk for t in active], revoked=False).update(revoked=True)
        for token in active:
            _record_revocation(token)
    send_access_changed(PersonalAccessToken)
    return len(active)


def record_revoked_flag_change(*, token: PersonalAccessToken) -> None:
    """Audit an administrator's direct change of ``token``'s revoked flag (the admin form)."""
    if token.revoked:
        _record_revocation(token)
    else:
        audit.record(
            "personal_access_token_updated",
            entity=token.user,
            target=token,
            change=("revoked", True, False),
        )


def _record_revocation(token: PersonalAccessToken) -> None:
    audit.record(
        "personal_access_token_revoked",
        entity=token.user,
        target=token,
        message=f"Revoked personal access token with id {token.pk}",
    )


# --- users (admin changes) ------------------------------------------------------------------

_STATE_EVENTS = {
    User.State.BLOCKED: ("user_blocked", "Blocked user"),
    User.State.DEACTIVATED: ("user_deactivated", "Deactivated user"),
    User.State.ACTIVE: ("user_unblocked", "Unblocked user"),
}


def record_user_access_changes(*, user: User, state_before: str, admin_before: bool) -> None:
    """Audit what an administrator changed of ``user``'s access (state, admin flag) when
    saving the user's row directly (the admin's change form); call in its transaction."""
    if user.state != state_before:
        event_name, message = _STATE_EVENTS[user.state]
        if state_before == User.State.DEACTIVATED and user.state == User.State.ACTIVE:
            event_name, message = "user_activated", "Activated user"
        audit.record(event_name, entity=user, target=user, target_details=user.username, message=message)
    if user.is_superuser != admin_before:
        audit.record(
            "user_admin_status_updated",
            entity=user,
            target=user,
            target_details=user.username,
            change=("admin", admin_before, user.is_superuser),
        )


# --- application settings -----------------------------------------------------------------


def check_default_cleanup_policy(settings: ApplicationSettings, changes: dict) -> None:
    """Have the registry app check the changes to the default cleanup policy settings
    (``cleanup_policy_defaults_submitted``); raises its ``ServiceError``."""
    fields = ApplicationSettings.DEFAULT_POLICY_FIELDS
    attributes = {fields[name]: value for name, value in changes.items() if name in fields}
    if attributes:
        current = {attribute: getattr(settings, name) for name, attribute in fields.items()}
        cleanup_policy_defaults_submitted.send(sender=ApplicationSettings, attributes=attributes, current=current)


def update_application_settings(*, changes: dict) -> ApplicationSettings:
    """Apply ``changes`` (field -> value, already type-checked) to the settings singleton.

    Raises ``ServiceError`` 400 ``{"message": {field: [problems]}}`` when a value breaks a
    model rule (token lifetime must be > 0, limits >= 0); nothing is saved then.
    """
    with transaction.atomic():
        ApplicationSettings.current()
        settings = ApplicationSettings.objects.select_for_update().get(pk=1)
        before = {field: getattr(settings, field) for field in changes}
        check_default_cleanup_policy(settings, changes)
        for field, value in changes.items():
            setattr(settings, field, value)
        try:
            settings.full_clean(exclude=["created_at", "updated_at"])
        except ValidationError as exc:
            raise bad_request({field: [str(m).rstrip(".") for m in msgs] for field, msgs in exc.message_dict.items()})
        settings.save()
        audit.record_changes(
            "application_setting_updated", entity=audit.INSTANCE, before=before, after=changes, target=settings
        )
    return settings
