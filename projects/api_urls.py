"""``/api/v4`` routes of groups, projects, namespaces, members and deploy tokens.

Project and group ids are captured with ``<str:...>``: a numeric id or a URL-encoded
full path (``projects.middleware`` keeps the encoded slashes); views unquote them.
"""

from __future__ import annotations

from django.urls import path

from projects.api import deploy_tokens, groups, members, namespaces, projects

urlpatterns = [
    path("groups", groups.GroupsView.as_view()),
    path("groups/<str:group_id>", groups.GroupView.as_view()),
    path("groups/<str:group_id>/subgroups", groups.SubgroupsView.as_view()),
    path("groups/<str:group_id>/descendant_groups", groups.DescendantGroupsView.as_view()),
    path("groups/<str:group_id>/projects", groups.GroupProjectsView.as_view()),
    path("namespaces", namespaces.NamespacesView.as_view()),
    path("namespaces/<str:namespace_id>", namespaces.NamespaceView.as_view()),
    path("projects", projects.ProjectsView.as_view()),
    path("projects/<str:project_id>", projects.ProjectView.as_view()),
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
    ]
