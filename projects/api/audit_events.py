"""``/groups/:id/audit_events`` (group Owners) and ``/projects/:id/audit_events`` (project
Maintainers and up): the events listed under that group or project."""

from __future__ import annotations

from gitlab_core.api.audit_events import AuditEventListView
from gitlab_core.errors import forbidden
from projects import permissions, selectors


class _GroupScoped(AuditEventListView):
    def scope(self, group_id: str) -> dict:
        user = self.require_user()
        group = selectors.find_group(user, self.decode_id(group_id))
        if not permissions.can(user, permissions.READ_GROUP_AUDIT_EVENTS, group):
            raise forbidden()
        return {"entity_type": "Group", "entity_id": group.pk}


class GroupAuditEventsView(_GroupScoped):
    def get(self, request, group_id: str):
        return self.audit_events(**self.scope(group_id))


class GroupAuditEventView(_GroupScoped):
    def get(self, request, group_id: str, event_id: str):
        return self.audit_event(event_id, **self.scope(group_id))


class _ProjectScoped(AuditEventListView):
    def scope(self, project_id: str) -> dict:
        user = self.require_user()
        project = selectors.find_project(user, self.decode_id(project_id))
        if not permissions.can(user, permissions.READ_PROJECT_AUDIT_EVENTS, project):
            raise forbidden()
        return {"entity_type": "Project", "entity_id": project.pk}


class ProjectAuditEventsView(_ProjectScoped):
    def get(self, request, project_id: str):
        return self.audit_events(**self.scope(project_id))


class ProjectAuditEventView(_ProjectScoped):
    def get(self, request, project_id: str, event_id: str):
        return self.audit_event(event_id, **self.scope(project_id))
