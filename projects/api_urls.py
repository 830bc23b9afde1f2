"""``/api/v4`` routes of groups, projects, namespaces, members and deploy tokens.

Project and group ids are captured with ``<str:...>``: a numeric id or a URL-encoded
full path (``projects.middleware`` keeps the encoded slashes); views unquote them.
"""

from __future__ import annotations

from django.urls import path

from projects.api import (
    audit_events,
    deploy_tokens,
    groups,
    hooks,
    members,
    namespaces,
    projects,
    protection_rules,
)

urlpatterns = [
    path("groups", groups.GroupsView.as_view()),
    path("groups/<str:group_id>", groups.GroupView.as_view()),
    path("groups/<str:group_id>/subgroups", groups.SubgroupsView.as_view()),
    path("groups/<str:group_id>/audit_events", audit_events.GroupAuditEventsView.as_view()),
    path("groups/<str:group_id>/audit_events/<str:event_id>", audit_events.GroupAuditEventView.as_view()),
    path("projects", projects.ProjectsView.as_view()),
    path("projects/<str:project_id>", projects.ProjectView.as_view()),
    path("projects/<str:project_id>/audit_events", audit_events.ProjectAuditEventsView.as_view()),
    path("projects/<str:project_id>/audit_events/<str:event_id>", audit_events.ProjectAuditEventView.as_view()),
    path(
        "projects/<str:project_id>/registry/protection/repository/rules",
        protection_rules.ProtectionRulesView.as_view(),
    ),
    path(
        "projects/<str:project_id>/registry/protection/repository/rules/<str:rule_id>",
        protection_rules.ProtectionRuleView.as_view(),
    ),
    path("groups/<str:group_id>/descendant_groups", groups.DescendantGroupsView.as_view()),
    path("groups/<str:group_id>/projects", groups.GroupProjectsView.as_view()),
    path("namespaces", namespaces.NamespacesView.as_view()),
    path("namespaces/<str:namespace_id>", namespaces.NamespaceView.as_view()),
    path("deploy_tokens", deploy_tokens.AllDeployTokensView.as_view()),
]
for _source in ("projects", "groups"):
    urlpatterns += [
        path(f"{_source}/<str:owner_id>/deploy_tokens", deploy_tokens.DeployTokensView.as_view(source=_source)),
        path(
            f"{_source}/<str:owner_id>/deploy_tokens/<str:token_id>",
            deploy_tokens.DeployTokenView.as_view(source=_source),
        ),
        path(f"{_source}/<str:source_id>/members", members.MembersView.as_view(source=_source)),
        path(f"{_source}/<str:source_id>/members/all", members.AllMembersView.as_view(source=_source)),
        path(f"{_source}/<str:source_id>/members/<str:user_id>", members.MemberView.as_view(source=_source)),
        path(f"{_source}/<str:parent_id>/hooks", hooks.HooksView.as_view(source=_source)),
        path(f"{_source}/<str:parent_id>/hooks/<str:hook_id>", hooks.HookView.as_view(source=_source)),
        path(
            f"{_source}/<str:parent_id>/hooks/<str:hook_id>/test/<str:trigger>",
            hooks.HookTestView.as_view(source=_source),
        ),
    ]
