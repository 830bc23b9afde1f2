"""Audit events of groups, projects, members and deploy tokens, and the group and project
lists: ``/groups/:id/audit_events`` (Owners) and ``/projects/:id/audit_events``
(Maintainers and up)."""

from __future__ import annotations

import pytest

from gitlab_core.models import AuditEvent


def events(event_name: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event_name=event_name).order_by("id"))


def test_members_added_changed_and_removed_through_the_api_are_audited(world, client_as):
    project, maintainer = world["project"], world["users"]["maintainer"]
    outsider = world["users"]["outsider"]
    client = client_as(maintainer)
    base = f"/api/v4/projects/{project.pk}/members"

    assert client.post(base, {"user_id": outsider.pk, "access_level": 20}, format="json").status_code == 201
    assert client.put(f"{base}/{outsider.pk}", {"access_level": 30}, format="json").status_code == 200
    assert client.delete(f"{base}/{outsider.pk}").status_code == 204

    [added], [changed], [removed] = events("member_created"), events("member_updated"), events("member_destroyed")
    assert added.details["custom_message"] == "Added member as Reporter"
    assert (changed.details["change"], changed.details["from"], changed.details["to"]) == (
        "access_level",
        "Reporter",
        "Developer",
    )
    assert removed.details["custom_message"] == "Removed member (was Developer)"
    for event in (added, changed, removed):
        assert (event.author_id, event.entity_type, event.entity_id) == (maintainer.pk, "Project", project.pk)
        assert (event.target_type, event.target_id, event.target_details) == ("User", outsider.pk, "outsider")


def test_a_refused_member_change_records_nothing(world, client_as):
    # The last Owner of a group cannot be demoted.
    acme, owner = world["acme"], world["users"]["owner"]
    response = client_as(owner).put(f"/api/v4/groups/{acme.pk}/members/{owner.pk}", {"access_level": 30}, format="json")

    assert response.status_code == 400
    assert not AuditEvent.objects.exists()


def test_groups_projects_and_their_changes_through_the_api_are_audited(world, client_as):
    owner = world["users"]["owner"]
    client = client_as(owner)
    group = client.post("/api/v4/groups", {"name": "Tools", "path": "tools", "parent_id": world["acme"].pk}).json()
    project = client.post("/api/v4/projects", {"name": "cli", "namespace_id": group["id"]}).json()
    client.put(f"/api/v4/projects/{project['id']}", {"path": "cli2", "container_registry_access_level": "disabled"})

    [group_created] = events("group_created")
    assert (group_created.entity_type, group_created.entity_id, group_created.entity_path) == (
        "Group",
        group["id"],
        "acme/tools",
    )
    [project_created] = events("project_created")
    assert (project_created.entity_type, project_created.entity_path) == ("Project", "acme/tools/cli")
    [path] = events("project_path_updated")
    [registry] = events("project_container_registry_access_level_updated")
    assert (path.details["from"], path.details["to"], path.details["entity_path"]) == ("cli", "cli2", "acme/tools/cli2")
    assert (registry.details["from"], registry.details["to"]) == ("enabled", "disabled")


def test_deploy_tokens_created_and_deleted_through_the_api_are_audited(world, client_as):
    project = world["project"]
    client = client_as(world["users"]["maintainer"])
    token = client.post(
        f"/api/v4/projects/{project.pk}/deploy_tokens", {"name": "ci", "scopes": ["read_registry"]}, format="json"
    ).json()
    client.delete(f"/api/v4/projects/{project.pk}/deploy_tokens/{token['id']}")

    [created], [deleted] = events("deploy_token_created"), events("deploy_token_destroyed")
    assert created.target_id == deleted.target_id == token["id"]
    assert (
        created.details["custom_message"]
        == f"Created project deploy token {token['username']} with scopes read_registry"
    )


def test_group_deploy_tokens_are_audited_under_their_group(world, client_as):
    group = world["acme"]
    client = client_as(world["users"]["owner"])
    token = client.post(
        f"/api/v4/groups/{group.pk}/deploy_tokens", {"name": "ci", "scopes": ["read_registry"]}, format="json"
    ).json()
    client.delete(f"/api/v4/groups/{group.pk}/deploy_tokens/{token['id']}")

    [created], [deleted] = events("deploy_token_created"), events("deploy_token_destroyed")
    assert (created.entity_type, created.entity_id) == (deleted.entity_type, deleted.entity_id) == ("Group", group.pk)
    assert created.details["custom_message"].startswith("Created group deploy token")


@pytest.mark.parametrize(
    ("role", "status"),
    [("owner", 200), ("maintainer", 200), ("developer", 403), ("reporter", 403), ("outsider", 404), (None, 401)],
)
def test_project_events_are_for_maintainers_and_up(world, client_as, role, status):
    response = client_as(world["users"].get(role)).get(f"/api/v4/projects/{world['project'].pk}/audit_events")

    assert response.status_code == status


@pytest.mark.parametrize(("role", "status"), [("owner", 200), ("maintainer", 403), ("outsider", 404)])
def test_group_events_are_for_owners(world, client_as, role, status):
    response = client_as(world["users"][role]).get(f"/api/v4/groups/{world['platform'].pk}/audit_events")

    assert response.status_code == status


def test_a_group_lists_only_its_own_events(world, client_as):
    owner, platform = world["users"]["owner"], world["platform"]
    client = client_as(owner)
    client.post(f"/api/v4/groups/{platform.pk}/members", {"user_id": world["users"]["outsider"].pk, "access_level": 10})
    client.post(
        f"/api/v4/groups/{world['acme'].pk}/members", {"user_id": world["users"]["guest"].pk, "access_level": 10}
    )

    listed = client.get(f"/api/v4/groups/{platform.pk}/audit_events").json()
    event_id = listed[0]["id"]
    other = AuditEvent.objects.exclude(pk=event_id).get()

    assert [(e["entity_type"], e["entity_id"]) for e in listed] == [("Group", platform.pk)]
    assert client.get(f"/api/v4/groups/{platform.pk}/audit_events/{event_id}").status_code == 200
    # Another entity's event is not found through this group.
    assert client.get(f"/api/v4/groups/{platform.pk}/audit_events/{other.pk}").status_code == 404
