"""Protected container repositories: the rule (``projects.protection``), the realm's
refusals, the API's deletions, the rules' API through python-gitlab, the admin."""

from __future__ import annotations

import gitlab
import pytest

from container_registry.models import ContainerRepository
from projects import protection
from projects.models import ContainerRepositoryProtectionRule, DeployToken, ProtectionLevel
from tests_support.factories import make_protection_rule, make_user

SVC = "acme/platform/svc"


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        (f"{SVC}", SVC, True),
        (f"{SVC}/*", f"{SVC}/app", True),
        (f"{SVC}/*", f"{SVC}/app/nested", True),
        (f"{SVC}/*", SVC, False),
        ("Acme/Platform/SVC/release-*", f"{SVC}/release-1", True),
        (f"{SVC}/rel*se", f"{SVC}/release", True),
        (f"{SVC}/a.b", f"{SVC}/axb", False),
        (f"{SVC}/app", f"{SVC}/app2", False),
    ],
)
def test_pattern_matching(pattern, path, matches):
    assert protection.pattern_matches(pattern, path) is matches


@pytest.mark.django_db
def test_who_a_rule_holds_back(world, settings):
    project, users = world["project"], world["users"]
    make_protection_rule(project, f"{SVC}/*", push=ProtectionLevel.OWNER, delete=ProtectionLevel.ADMIN)
    path = f"{SVC}/app"
    assert protection.refused_actions(users["maintainer"], project, path) == {"push", "delete"}
    assert protection.refused_actions(users["owner"], project, path) == {"delete"}
    assert protection.refused_actions(make_user("root", admin=True), project, path) == frozenset()
    token = DeployToken.objects.create(project=project, name="d", scopes=["write_registry"], token_digest="x")
    assert protection.refused_actions(token, project, path) == {"push", "delete"}
    assert protection.refused_actions(None, project, path) == {"push", "delete"}
    # Another repository of the project is not covered by the pattern.
    assert protection.refused_actions(users["maintainer"], project, SVC) == frozenset()


# --- API deletions ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_deletions_respect_the_delete_level(client, world, api_token):
    project = world["project"]
    repository = ContainerRepository.objects.create(project=project, name="app")
    make_protection_rule(project, f"{SVC}/app", delete=ProtectionLevel.OWNER)
    maintainer = {"HTTP_PRIVATE_TOKEN": api_token(world["users"]["maintainer"])}
    base = f"/api/v4/projects/{project.pk}/registry/repositories/{repository.pk}"
    message = {"message": "403 Forbidden - Deleting protected container repository forbidden."}
    for response in (
        client.delete(base, **maintainer),
        client.delete(f"{base}/tags/latest", **maintainer),
        client.delete(f"{base}/tags?name_regex_delete=.*", **maintainer),
    ):
        assert response.status_code == 403 and response.json() == message
    repository.refresh_from_db()
    assert repository.status is None
    owner = {"HTTP_PRIVATE_TOKEN": api_token(world["users"]["owner"])}
    assert client.delete(base, **owner).status_code == 202


# --- The rules' API (python-gitlab) and the admin -----------------------------------------------


def test_rules_api_through_python_gitlab(gl_as, world):
    users = world["users"]
    project = gl_as(users["maintainer"]).projects.get(SVC)
    rules = project.registry_protection_repository_rules
    rule = rules.create({"repository_path_pattern": f"{SVC}/release-*", "minimum_access_level_for_push": "maintainer"})
    assert (rule.minimum_access_level_for_push, rule.minimum_access_level_for_delete) == ("maintainer", None)
    assert [r.repository_path_pattern for r in rules.list()] == [f"{SVC}/release-*"]

    rule.minimum_access_level_for_delete = "owner"
    rule.save()
    updated = rules.list()[0]
    assert (updated.id, updated.minimum_access_level_for_delete) == (rule.id, "owner")

    for bad in (
        {"repository_path_pattern": "other/project/*", "minimum_access_level_for_push": "owner"},
        {"repository_path_pattern": f"{SVC}/Not Valid", "minimum_access_level_for_push": "owner"},
        {"repository_path_pattern": f"{SVC}/x"},
        {"repository_path_pattern": f"{SVC}/release-*", "minimum_access_level_for_push": "owner"},
    ):
        with pytest.raises(gitlab.GitlabCreateError) as excinfo:
            rules.create(bad)
        assert excinfo.value.response_code == 422
    with pytest.raises(gitlab.GitlabCreateError) as excinfo:
        rules.create({"repository_path_pattern": f"{SVC}/y", "minimum_access_level_for_push": "guest"})
    assert excinfo.value.response_code == 400

    developer_view = gl_as(users["developer"]).projects.get(SVC, lazy=True)
    with pytest.raises(gitlab.GitlabListError) as excinfo:
        developer_view.registry_protection_repository_rules.list()
    assert excinfo.value.response_code == 403

    rules.delete(rule.id)
    assert rules.list() == []
    assert not ContainerRepositoryProtectionRule.objects.exists()


@pytest.mark.django_db
def test_admin_creates_and_validates_rules(client, world):
    client.force_login(make_user("root", admin=True))
    project = world["project"]
    url = "/admin/projects/containerrepositoryprotectionrule/add/"
    bad = client.post(url, {"project": project.pk, "repository_path_pattern": "elsewhere/x/*"})
    assert bad.status_code == 200
    assert b"should start with the project" in bad.content
    assert b"at least a minimum access role" in bad.content
    good = client.post(
        url,
        {"project": project.pk, "repository_path_pattern": f"{SVC}/*", "minimum_access_level_for_push": "50"},
    )
    assert good.status_code == 302
    rule = ContainerRepositoryProtectionRule.objects.get()
    assert (rule.repository_path_pattern, rule.minimum_access_level_for_push) == (f"{SVC}/*", 50)
    assert client.get("/admin/projects/containerrepositoryprotectionrule/").status_code == 200


@pytest.mark.django_db
def test_rule_changes_are_audit_events(client, world, api_token):
    from gitlab_core.models import AuditEvent

    project = world["project"]
    token = {"HTTP_PRIVATE_TOKEN": api_token(world["users"]["maintainer"])}
    base = f"/api/v4/projects/{project.pk}/registry/protection/repository/rules"
    created = client.post(
        base, {"repository_path_pattern": f"{SVC}/*", "minimum_access_level_for_push": "maintainer"}, **token
    ).json()
    client.patch(
        f"{base}/{created['id']}",
        {"minimum_access_level_for_push": "owner"},
        content_type="application/json",
        **token,
    )
    client.delete(f"{base}/{created['id']}", **token)
    events = list(AuditEvent.objects.filter(entity_type="Project", entity_id=project.pk).order_by("id"))
    assert [e.event_name for e in events] == [
        "container_protection_rule_created",
        "container_protection_rule_updated",
        "container_protection_rule_deleted",
    ]
    assert (events[1].details["from"], events[1].details["to"]) == ("maintainer", "owner")
    assert {e.author_id for e in events} == {world["users"]["maintainer"].pk}
