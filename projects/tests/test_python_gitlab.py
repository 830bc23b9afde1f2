"""The real python-gitlab client, unchanged, against a live server."""

from __future__ import annotations

import warnings

import gitlab
import pytest

from container_registry.api import JOB_TOKEN_OTHER_PROJECT
from gitlab_core.models import ApplicationSettings, User
from projects.models import CiJob, Project
from tests_support.factories import make_group, make_token, make_user


@pytest.fixture
def gl(transactional_db, live_server, admin, gitlab_client):
    client = gitlab_client(live_server.url, make_token(admin))
    client.auth()
    return client


def test_auth_users_and_personal_access_tokens(gl, live_server, gitlab_client):
    assert gl.user.username == "root" and gl.user.web_url == f"{live_server.url}/root"
    user = gl.users.create({"email": "bob@example.test", "username": "bob", "name": "Bob", "password": "long-enough-1"})
    assert gl.users.list(username="bob")[0].id == user.id
    assert gl.users.get(user.id).username == "bob"
    token = gl.users.get(user.id, lazy=True).personal_access_tokens.create({"name": "ci", "scopes": ["api"]})
    as_bob = gitlab_client(live_server.url, token.token)
    as_bob.auth()
    assert as_bob.user.username == "bob"
    assert as_bob.personal_access_tokens.get("self").id == token.id
    rotated = as_bob.personal_access_tokens.rotate("self")
    with pytest.raises(gitlab.GitlabAuthenticationError):
        as_bob.auth()
    as_bob = gitlab_client(live_server.url, rotated["token"])
    assert [t.id for t in as_bob.personal_access_tokens.list()] == [token.id, rotated["id"]]
    as_bob.personal_access_tokens.delete("self")
    with pytest.raises(gitlab.GitlabAuthenticationError):
        as_bob.auth()


def test_groups_projects_and_cleanup_policy(gl):
    top = gl.groups.create({"name": "Acme", "path": "acme"})
    sub = gl.groups.create({"name": "Platform", "path": "platform", "parent_id": top.id})
    assert gl.groups.get("acme/platform").id == sub.id
    assert [g.full_path for g in top.subgroups.list()] == ["acme/platform"]
    project = gl.projects.create(
        {
            "name": "svc",
            "namespace_id": sub.id,
            "container_registry_access_level": "private",
            "container_expiration_policy_attributes": {"cadence": "7d", "enabled": True, "keep_n": 5},
        }
    )
    fetched = gl.projects.get("acme/platform/svc")
    assert fetched.id == project.id and fetched.container_registry_access_level == "private"
    assert fetched.container_expiration_policy["keep_n"] == 5
    fetched.container_registry_access_level = "enabled"
    fetched.container_expiration_policy_attributes = {"cadence": "14d", "name_regex": "v.+"}
    fetched.save()
    again = gl.projects.get(project.id)
    assert again.container_registry_access_level == "enabled"
    assert (again.container_expiration_policy["cadence"], again.container_expiration_policy["name_regex"]) == (
        "14d",
        "v.+",
    )
    with pytest.raises(gitlab.GitlabUpdateError) as excinfo:
        gl.projects.update(project.id, {"container_expiration_policy_attributes": {"cadence": "2d"}})
    assert excinfo.value.response_code == 400
    gl.projects.update(project.id, {"container_registry_enabled": False})
    assert gl.projects.get(project.id).container_registry_access_level == "disabled"
    gl.projects.delete(project.id)
    with pytest.raises(gitlab.GitlabGetError) as excinfo:
        gl.projects.get(project.id)
    assert excinfo.value.response_code == 404
    assert not Project.objects.filter(pk=project.id).exists()


def test_members_deploy_tokens_and_settings(gl):
    group = gl.groups.create({"name": "Acme", "path": "acme"})
    project = gl.projects.create({"name": "svc", "namespace_id": group.id})
    dev = make_user("dev")
    member = project.members.create({"user_id": dev.pk, "access_level": 30})
    member.access_level = 40
    member.save()
    assert project.members.get(dev.pk).access_level == 40
    assert {m.username: m.access_level for m in project.members_all.list()} == {"root": 50, "dev": 40}
    assert [m.username for m in group.members.list()] == ["root"]
    project.members.delete(dev.pk)
    assert [m.username for m in project.members.list()] == []

    token = project.deploytokens.create({"name": "ci", "scopes": ["read_registry", "write_registry"]})
    assert token.token.startswith("gldt-")
    assert [t.id for t in project.deploytokens.list()] == [token.id]
    project.deploytokens.delete(token.id)
    assert project.deploytokens.list() == []

    settings = gl.settings.get()
    assert settings.container_registry_token_expire_delay == 5
    settings.container_registry_token_expire_delay = 15
    settings.save()
    assert ApplicationSettings.current().container_registry_token_expire_delay == 15
    with pytest.raises(gitlab.GitlabUpdateError):
        gl.settings.update(new_data={"container_registry_token_expire_delay": 0})


def test_pagination_follows_links_without_base_url_warnings(gl):
    for i in range(25):
        make_group(f"g{i:02d}", visibility="public")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        every = gl.groups.list(get_all=True, per_page=10)
        streamed = list(gl.groups.list(iterator=True, per_page=7))
    assert len(every) == 25 and [g.path for g in streamed] == [g.path for g in every]
    first_page = gl.groups.list(per_page=10, page=3)
    assert len(first_page) == 5


def test_audit_events_of_api_calls_and_admin_actions(gl, live_server, gitlab_client, client, admin):
    """python-gitlab reads, unchanged, the events that its own calls and an administrator's
    admin pages recorded: for the instance, a group (Owners) and a project (Maintainers)."""
    group = gl.groups.create({"name": "Acme", "path": "acme", "visibility": "internal"})
    project = gl.projects.create({"name": "svc", "namespace_id": group.id, "visibility": "private"})
    dev, maint = make_user("dev"), make_user("maint")
    project.members.create({"user_id": dev.pk, "access_level": 30})
    project.members.create({"user_id": maint.pk, "access_level": 40})
    gl.projects.update(project.id, {"visibility": "internal"})
    # An administrator blocks a user in the admin (the real admin form, posted).
    client.force_login(admin)
    response = client.post(
        f"/admin/gitlab_core/user/{dev.pk}/change/",
        {
            "username": "dev",
            "name": dev.name,
            "email": dev.email,
            "state": "blocked",
            "can_create_group": "on",
            "projects_limit": dev.projects_limit,
        },
    )
    assert response.status_code == 302

    instance = gl.audit_events.list(get_all=True)
    assert [e.event_name for e in instance][:2] == ["user_blocked", "project_visibility_level_updated"]
    blocked = instance[0]
    assert (blocked.author_id, blocked.entity_type, blocked.entity_id) == (admin.pk, "User", dev.pk)
    assert blocked.details["author_name"] == admin.name and blocked.details["ip_address"] == "127.0.0.1"

    about_project = gl.audit_events.list(entity_type="Project", entity_id=project.id, get_all=True)
    assert {e.event_name for e in about_project} == {
        "project_created",
        "member_created",
        "project_visibility_level_updated",
    }
    visibility = gl.audit_events.get(about_project[0].id)
    assert (visibility.details["change"], visibility.details["from"], visibility.details["to"]) == (
        "visibility",
        "private",
        "internal",
    )

    # The group's Owner (root created it) reads the group's events.
    assert [e.event_name for e in group.audit_events.list(get_all=True)] == ["group_created"]
    # A Maintainer reads the project's; a Developer may not.
    as_maint = gitlab_client(live_server.url, make_token(maint))
    assert len(as_maint.projects.get(project.id, lazy=True).audit_events.list(get_all=True)) == len(about_project)
    as_dev_project = gitlab_client(live_server.url, make_token(make_user("dev2"))).projects.get(project.id, lazy=True)
    project.members.create({"user_id": User.objects.get(username="dev2").pk, "access_level": 30})
    with pytest.raises(gitlab.GitlabListError) as excinfo:
        as_dev_project.audit_events.list()
    assert excinfo.value.response_code == 403
    with pytest.raises(gitlab.GitlabListError) as excinfo:
        as_maint.audit_events.list()
    assert excinfo.value.response_code == 403


def test_version_namespaces_group_listings_and_group_deploy_tokens(gl, settings):
    settings.APP_REVISION = "abc1234"
    assert gl.version() == ("0.1.0", "abc1234")
    assert gl.http_get("/metadata")["version"] == "0.1.0"

    top = gl.groups.create({"name": "Acme", "path": "acme"})
    sub = gl.groups.create({"name": "Platform", "path": "platform", "parent_id": top.id})
    deep = gl.groups.create({"name": "Edge", "path": "edge", "parent_id": sub.id})
    gl.projects.create({"name": "top", "namespace_id": top.id})
    gl.projects.create({"name": "svc", "namespace_id": sub.id})

    assert [p.path_with_namespace for p in top.projects.list()] == ["acme/top"]
    every = top.projects.list(include_subgroups=True, order_by="path", sort="asc")
    assert [p.path_with_namespace for p in every] == ["acme/platform/svc", "acme/top"]
    assert [g.full_path for g in top.subgroups.list()] == ["acme/platform"]
    assert sorted(g.full_path for g in top.descendant_groups.list()) == ["acme/platform", "acme/platform/edge"]

    assert [n.full_path for n in gl.namespaces.list(search="edge")] == ["acme/platform/edge"]
    assert gl.namespaces.get(deep.id).full_path == "acme/platform/edge"
    by_path = gl.namespaces.get("acme/platform")
    assert (by_path.id, by_path.kind, by_path.parent_id) == (sub.id, "group", top.id)
    with pytest.raises(gitlab.GitlabGetError) as excinfo:
        gl.namespaces.get("acme/none")
    assert excinfo.value.response_code == 404 and excinfo.value.error_message == "404 Namespace Not Found"

    token = top.deploytokens.create({"name": "fleet", "scopes": ["read_registry", "write_registry"]})
    assert token.token.startswith("gldt-")
    assert [t.id for t in top.deploytokens.list()] == [token.id]
    assert top.deploytokens.get(token.id).name == "fleet"
    assert [t.id for t in gl.deploytokens.list()] == [token.id]
    top.deploytokens.delete(token.id)
    assert top.deploytokens.list() == [] and gl.deploytokens.list() == []


def test_errors_keep_one_shape(gl):
    with pytest.raises(gitlab.GitlabGetError) as excinfo:
        gl.projects.get("acme/none")
    assert excinfo.value.response_code == 404 and excinfo.value.error_message == "404 Project Not Found"
    with pytest.raises(gitlab.GitlabListError) as excinfo:
        gl.projects.get("acme/none", lazy=True).repositories.list()
    assert excinfo.value.error_message == "404 Project Not Found"
    for bad, message in (({"page": 0}, "page does not have a valid value"), ({"per_page": "x"}, "per_page is invalid")):
        with pytest.raises(gitlab.GitlabListError) as excinfo:
            gl.groups.list(**bad)
        assert excinfo.value.response_code == 400 and excinfo.value.error_message == message


def test_sudo_acts_as_the_named_user_only_with_the_sudo_scope(gl, admin, live_server, gitlab_client):
    bob = make_user("bob")
    with_sudo = gitlab_client(live_server.url, make_token(admin, ["api", "sudo"]))
    assert with_sudo.users.get(bob.pk).username == "bob"
    as_bob = with_sudo.http_get("/user", sudo="bob")
    assert as_bob["username"] == "bob"
    group = with_sudo.groups.create({"name": "Bobs", "path": "bobs"}, sudo=bob.pk)
    assert [m.username for m in group.members.list()] == ["bob"]
    with pytest.raises(gitlab.GitlabHttpError) as excinfo:
        gl.http_get("/user", sudo="bob")
    assert excinfo.value.response_code == 403


def test_a_job_token_reads_its_own_projects_registry_only(gl, live_server, gitlab_client):
    group = gl.groups.create({"name": "Acme", "path": "acme"})
    own = gl.projects.create({"name": "svc", "namespace_id": group.id})
    other = gl.projects.create({"name": "other", "namespace_id": group.id})
    job = CiJob(project_id=own.id, user=User.objects.get(username="root"))
    secret = job.set_secret()
    job.save()
    as_job = gitlab_client(live_server.url, job_token=secret)
    assert as_job.projects.get(own.id, lazy=True).repositories.list() == []
    with pytest.raises(gitlab.GitlabListError) as excinfo:
        as_job.projects.get(other.id, lazy=True).repositories.list()
    assert excinfo.value.response_code == 403
    assert excinfo.value.error_message == JOB_TOKEN_OTHER_PROJECT


def test_cleanup_policy_defaults_and_the_brake_release(gl):
    """Our extensions through python-gitlab's own objects: the instance's and a group's
    default cleanup policy, the brake's settings, and the release of a held repository
    (``http_post``: python-gitlab has no method for our route)."""
    from container_registry.models import ContainerRepository
    from container_registry.scheduling import run_policy_cleanup
    from container_registry.tests.test_cleanup_service import FakeRegistryClient, old_tags

    settings = gl.settings.get()
    settings.container_expiration_policy_default_cadence = "7d"
    settings.container_registry_cleanup_brake_tags = 5
    settings.save()
    settings = gl.settings.get()
    assert settings.container_expiration_policy_default_cadence == "7d"
    assert (settings.container_registry_cleanup_brake_enabled, settings.container_registry_cleanup_brake_tags) == (
        True,
        5,
    )
    top = gl.groups.create({"name": "Acme", "path": "acme"})
    top.container_expiration_policy_attributes = {"enabled": True, "keep_n": 5, "name_regex": "t.*"}
    top.save()
    assert gl.groups.get(top.id).container_expiration_policy["keep_n"] == 5
    project = gl.projects.create({"name": "svc", "namespace_id": top.id})
    policy = gl.projects.get(project.id).container_expiration_policy
    assert (policy["enabled"], policy["cadence"], policy["keep_n"], policy["name_regex"]) == (True, "7d", 5, "t.*")

    # A repository that was there when the project's policy changed: its first run under
    # the changed policy goes through the brake.
    repository = ContainerRepository.objects.create(project_id=project.id, name="app")
    gl.projects.update(project.id, {"container_expiration_policy_attributes": {"older_than": "7d"}})
    ContainerRepository.objects.filter(pk=repository.pk).update(expiration_policy_cleanup_status="cleanup_scheduled")
    client = FakeRegistryClient(old_tags(20))
    assert run_policy_cleanup(repository_id=repository.pk, client=client).result == "held"
    (listed,) = gl.projects.get(project.id, lazy=True).repositories.list()
    assert listed.cleanup_policy_held_plan["delete"] == 15  # keep_n 5 of 20, over the limit of 5

    released = gl.http_post(f"/projects/{project.id}/registry/repositories/{repository.pk}/cleanup/release")
    assert released["cleanup_policy_held_at"] is None
    assert run_policy_cleanup(repository_id=repository.pk, client=client).result == "finished"
    assert len(client.tags) == 5
    with pytest.raises(gitlab.GitlabHttpError) as refused:
        gl.http_post(f"/projects/{project.id}/registry/repositories/{repository.pk}/cleanup/release")
    assert refused.value.response_code == 400
