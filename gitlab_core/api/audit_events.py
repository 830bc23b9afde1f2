"""``/audit_events`` (administrators): the instance's audit log in GitLab's shape.

The group and project lists (``projects.api.audit_events``) use the same filters,
scoped to their entity.
"""

from __future__ import annotations

from rest_framework.response import Response

from gitlab_core import selectors
from gitlab_core.api import entities
from gitlab_core.api.views import ApiView
from gitlab_core.audit import ENTITY_TYPES
from gitlab_core.errors import forbidden, not_found
from gitlab_core.models import AuditEvent


class AuditEventListView(ApiView):
    """A paginated list of audit events, newest first; ``created_after`` and
    ``created_before`` filter every list, ``entity_type``/``entity_id`` the instance's."""

    entity_filters = False

    def audit_events(self, **scope) -> Response:
        params = self.params()
        filters = {
            "created_after": params.datetime("created_after"),
            "created_before": params.datetime("created_before"),
        }
        if self.entity_filters:
            filters["entity_type"] = params.choice("entity_type", ENTITY_TYPES)
            filters["entity_id"] = params.int("entity_id", minimum=1)
        params.check()
        return self.paginated(selectors.list_audit_events(**filters, **scope), entities.audit_event)

    def audit_event(self, raw_id: str, **scope) -> Response:
        event_id = self.int_id(raw_id)
        event = AuditEvent.objects.filter(pk=event_id, **scope).first() if event_id else None
        if event is None:
            raise not_found("AuditEvent")
        return Response(entities.audit_event(event))


class _AdminOnly(AuditEventListView):
    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if not self.require_user().is_admin:
            raise forbidden()


class AuditEventsView(_AdminOnly):
    entity_filters = True

    def get(self, request):
        return self.audit_events()


class AuditEventView(_AdminOnly):
    def get(self, request, event_id: str):
        return self.audit_event(event_id)
