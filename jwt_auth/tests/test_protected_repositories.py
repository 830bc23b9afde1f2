"""Protected container repositories in the realm: a push or delete refused below the
rule's level fails the request, as GitLab answers; deploy tokens and CI jobs included."""

from __future__ import annotations

import pytest

from container_registry.models import ContainerRepository
from projects.models import CiJob, ProtectionLevel
from tests_support.factories import make_protection_rule, make_user

SVC = "acme/platform/svc"


@pytest.mark.django_db
def test_realm_refuses_pushes_below_the_level(realm, world, api_token):
    project, users = world["project"], world["users"]
    make_protection_rule(project, f"{SVC}/release*", push=ProtectionLevel.MAINTAINER)
    developer = ("developer", api_token(users["developer"]))
    refused = realm.get(f"repository:{SVC}/release:pull,push", creds=developer)
    assert refused.status_code == 403
    assert refused.json() == {
        "errors": [{"code": "DENIED", "message": "Pushing to protected repository path forbidden"}]
    }
    # Pulls, and pushes elsewhere in the project, are not affected.
    assert realm.access(f"repository:{SVC}/release:pull", creds=developer) == {f"{SVC}/release": ["pull"]}
    assert realm.access(f"repository:{SVC}/dev:pull,push", creds=developer) == {f"{SVC}/dev": ["pull", "push"]}
    maintainer = ("maintainer", api_token(users["maintainer"]))
    assert realm.access(f"repository:{SVC}/release:pull,push", creds=maintainer) == {f"{SVC}/release": ["pull", "push"]}


@pytest.mark.django_db
def test_realm_refuses_a_refused_push_before_creating_the_repository(realm, world, api_token):
    make_protection_rule(world["project"], f"{SVC}/locked", push=ProtectionLevel.OWNER)
    creds = ("maintainer", api_token(world["users"]["maintainer"]))
    assert realm.get(f"repository:{SVC}/locked:pull,push", creds=creds).status_code == 403
    assert not ContainerRepository.objects.filter(project=world["project"], name="locked").exists()


@pytest.mark.django_db
def test_realm_refuses_deletes_below_the_level_and_admins_pass(realm, world, api_token):
    make_protection_rule(world["project"], f"{SVC}", delete=ProtectionLevel.OWNER)
    maintainer = ("maintainer", api_token(world["users"]["maintainer"]))
    refused = realm.get(f"repository:{SVC}:delete", creds=maintainer)
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["message"] == "Deleting from protected repository path forbidden"
    assert realm.access(f"repository:{SVC}:pull,push", creds=maintainer) == {SVC: ["pull", "push"]}
    owner = ("owner", api_token(world["users"]["owner"]))
    assert realm.access(f"repository:{SVC}:delete", creds=owner) == {SVC: ["delete"]}
    root = make_user("root", admin=True)
    make_protection_rule(world["project"], f"{SVC}/x", push=ProtectionLevel.ADMIN)
    assert realm.access(f"repository:{SVC}/x:pull,push", creds=("root", api_token(root))) == {
        f"{SVC}/x": ["pull", "push"]
    }


@pytest.mark.django_db
def test_realm_holds_back_deploy_tokens_and_ci_jobs(realm, world, make_deploy_token, make_ci_job):
    project = world["project"]
    make_protection_rule(project, f"{SVC}/release", push=ProtectionLevel.MAINTAINER)
    token, secret = make_deploy_token(project, scopes=("read_registry", "write_registry"))
    assert realm.get(f"repository:{SVC}/release:pull,push", creds=(token.username, secret)).status_code == 403
    assert realm.access(f"repository:{SVC}/dev:pull,push", creds=(token.username, secret)) == {
        f"{SVC}/dev": ["pull", "push"]
    }
    # A job acts with its user's role.
    _, developer_job = make_ci_job(project, user=world["users"]["developer"])
    assert realm.get(f"repository:{SVC}/release:pull,push", creds=("gitlab-ci-token", developer_job)).status_code == 403
    _, maintainer_job = make_ci_job(project, user=world["users"]["maintainer"])
    assert realm.access(f"repository:{SVC}/release:pull,push", creds=("gitlab-ci-token", maintainer_job)) == {
        f"{SVC}/release": ["pull", "push"]
    }
    _, userless_job = make_ci_job(project, user=None)
    assert realm.get(f"repository:{SVC}/release:pull,push", creds=("gitlab-ci-token", userless_job)).status_code == 403
    assert CiJob.objects.count() == 3


@pytest.mark.django_db
def test_a_new_rule_applies_within_the_decision_reuse_window(realm, world, api_token, settings):
    settings.REALM_DECISION_CACHE_SECONDS = 30
    creds = ("developer", api_token(world["users"]["developer"]))
    scope = f"repository:{SVC}/app:pull,push"
    assert realm.get(scope, creds=creds).status_code == 200
    assert realm.get(scope, creds=creds).status_code == 200
    make_protection_rule(world["project"], f"{SVC}/*", push=ProtectionLevel.MAINTAINER)
    assert realm.get(scope, creds=creds).status_code == 403
