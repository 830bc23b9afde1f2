"""Reads of users, personal access tokens and audit events, scoped to what the viewer may see."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.utils import timezone

from gitlab_core.models import AuditEvent, PersonalAccessToken, User

USER_ORDER_FIELDS = {
    "id": "id",
    "name": "name",
    "username": "username",
    "created_at": "date_joined",
    "updated_at": "date_joined",
}


def list_users(
    *,
    viewer: User,
    username: str | None = None,
    search: str | None = None,
    active: bool | None = None,
    blocked: bool | None = None,
    external: bool | None = None,
    order_by: str | None = None,
    sort: str | None = None,
) -> QuerySet[User]:
    """Users matching GitLab's ``GET /users`` filters.

    Without ``order_by`` the order is ``id`` ascending so that pages are stable (our
    decision); with it, ``sort`` defaults to ``desc`` as in GitLab.
    """
    qs = User.objects.select_related("personal_namespace")
    if username is not None:
        qs = qs.filter(username__iexact=username)
    if search:
        condition = Q(username__icontains=search) | Q(name__icontains=search)
        if viewer.is_admin:
            # Only administrators may find users by their (private) email address.
            condition |= Q(email__icontains=search)
        qs = qs.filter(condition)
    if active is not None:
        qs = qs.filter(state=User.State.ACTIVE) if active else qs.exclude(state=User.State.ACTIVE)
    if blocked is not None:
        qs = qs.filter(state=User.State.BLOCKED) if blocked else qs.exclude(state=User.State.BLOCKED)
    if external is not None:
        qs = qs.filter(external=external)
    field = USER_ORDER_FIELDS[order_by or "id"]
    direction = sort or ("desc" if order_by else "asc")
    prefix = "-" if direction == "desc" else ""
    return qs.order_by(f"{prefix}{field}", f"{prefix}id")


def list_personal_access_tokens(
    *,
    user_id: int | None = None,
    revoked: bool | None = None,
    state: str | None = None,
    search: str | None = None,
) -> QuerySet[PersonalAccessToken]:
    qs = PersonalAccessToken.objects.all()
    if user_id is not None:
        qs = qs.filter(user_id=user_id)
    if revoked is not None:
        qs = qs.filter(revoked=revoked)
    if state is not None:
        active = Q(revoked=False) & (Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now().date()))
        qs = qs.filter(active) if state == "active" else qs.exclude(active)
    if search:
        qs = qs.filter(name__icontains=search)
    return qs.order_by("id")


def list_audit_events(
    *,
    entity_type: str | None = None,
    entity_id: int | None = None,
    created_after=None,
    created_before=None,
) -> QuerySet[AuditEvent]:
    """Audit events, newest first, filtered like GitLab's ``GET /audit_events``
    (``created_after`` and ``created_before`` are inclusive). Both orders and filters are
    served by the ``created_at`` and entity indexes; callers paginate."""
    events = AuditEvent.objects.all()
    if entity_type is not None:
        events = events.filter(entity_type=entity_type)
    if entity_id is not None:
        events = events.filter(entity_id=entity_id)
    if created_after is not None:
        events = events.filter(created_at__gte=created_after)
    if created_before is not None:
        events = events.filter(created_at__lte=created_before)
    return events.order_by("-created_at", "-id")
