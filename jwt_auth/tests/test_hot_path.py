"""The realm's fast path: one query per request, per-process caches with short,
documented windows, and a successful decision reused for an identical request within
one second (``jwt_auth.decisions``), cleared by any change saved in this process.

Most tests here commit (``transaction=True``): the caches only keep committed values,
so inside a test transaction they never fill, and the production behaviour needs the
production commit pattern to show.
"""

from __future__ import annotations

import time

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from container_registry import repositories
from container_registry.models import ContainerRepository
from gitlab_core import services as core_services
from gitlab_core.models import ApplicationSettings, PersonalAccessToken
from jwt_auth import tokens
from projects.models import AccessLevel, GroupMember, Namespace, ProjectMember
from tests_support.factories import make_group, make_project, make_token, make_user

SVC = "acme/platform/svc"
PUSH = f"repository:{SVC}/img:pull,push"
committed = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def activity_marks_just_written(monkeypatch):
    """The last-push mark (``container_registry.registry_activity``) is a cache write at
    most every 10 s per process: whether it falls into a counted request depends on when
    an earlier test wrote it. Counted here as just written, so the counts are the realm's."""
    from container_registry import registry_activity

    now = time.monotonic() + 3600
    monkeypatch.setattr(registry_activity, "_written", dict.fromkeys((registry_activity.PUSH_GRANTED,), now))


def _expires_in(realm, creds) -> int:
    response = realm.get(PUSH, creds=creds)
    assert response.status_code == 200, response.content
    return response.json()["expires_in"]


@committed
def test_a_warm_pat_push_request_costs_one_query(realm, world, settings):
    settings.REALM_DECISION_CACHE_SECONDS = 0
    creds = ("developer", make_token(world["users"]["developer"]))
    assert realm.access(PUSH, creds=creds) == {f"{SVC}/img": ["pull", "push"]}
    with CaptureQueriesContext(connection) as queries:
        assert realm.access(PUSH, creds=creds) == {f"{SVC}/img": ["pull", "push"]}
    # This client's failed-login state (the login made canonical in the same statement)
    # beside the token with its user, and the projects with that user's access level and
    # their root namespaces.
    sql = [q["sql"] for q in queries.captured_queries]
    assert len(sql) == 1, sql
    assert all(table in sql[0] for table in ("login_failures", "personal_access_tokens", "project_members"))


@committed
def test_an_identical_request_within_the_window_reuses_the_decision_and_signs_anew(realm, world):
    creds = ("developer", make_token(world["users"]["developer"]))
    # The first push grant creates the repository row, and a change made while deciding
    # keeps that decision out of the cache: the second request is the first one kept.
    realm.get(PUSH, creds=creds)
    first = realm.claims(realm.get(PUSH, creds=creds))
    with CaptureQueriesContext(connection) as queries:
        second = realm.claims(realm.get(PUSH, creds=creds))
    assert [q["sql"] for q in queries.captured_queries if "gitlab_cache" not in q["sql"]] == []
    assert (
        second["access"]
        == first["access"]
        == [
            {
                "type": "repository",
                "name": f"{SVC}/img",
                "actions": ["pull", "push"],
                "meta": first["access"][0]["meta"],
            }
        ]
    )
    assert second["jti"] != first["jti"]


@committed
def test_another_scope_or_client_address_is_decided_afresh(realm, world, client):
    creds = ("developer", make_token(world["users"]["developer"]))
    realm.get(PUSH, creds=creds)
    with CaptureQueriesContext(connection) as queries:
        assert realm.access(f"repository:{SVC}/img:pull", creds=creds) == {f"{SVC}/img": ["pull"]}
    assert len(queries.captured_queries) == 1
    with CaptureQueriesContext(connection) as queries:
        assert realm.get(PUSH, creds=creds, REMOTE_ADDR="10.1.2.3").status_code == 200
    assert len(queries.captured_queries) == 1


@committed
def test_a_refused_token_lends_its_users_access_to_no_one(realm, world, settings):
    """The one query reads the access of the user whose personal access token the
    password may be. When that token is refused and the password is someone else's, that
    someone's own access decides."""
    settings.REALM_DECISION_CACHE_SECONDS = 0
    settings.PASSWORD_AUTHENTICATION_ENABLED_FOR_GIT = True
    secret = make_token(world["users"]["developer"], revoked=True)
    outsider = world["users"]["outsider"]
    outsider.set_password(secret)
    outsider.save()
    assert realm.get(PUSH, creds=("developer", secret)).status_code == 401
    assert realm.access(PUSH, creds=("outsider", secret)) == {}
    world["users"]["developer"].set_password(secret)
    world["users"]["developer"].save()
    assert realm.access(PUSH, creds=("developer", secret)) == {f"{SVC}/img": ["pull", "push"]}


@pytest.mark.django_db
def test_paths_read_with_the_credential_serve_only_the_scopes_they_were_read_for(world):
    from jwt_auth import services

    secret = make_token(world["users"]["developer"])
    auth = services.authenticate_login(login="developer", password=secret, client_ip="10.0.0.1", scopes=[PUSH])
    assert auth.resolved_paths is not None
    access = services.grant_access(auth=auth, scopes=[f"repository:{SVC}/other:pull", PUSH])
    assert {entry["name"]: entry["actions"] for entry in access} == {
        f"{SVC}/other": ["pull"],
        f"{SVC}/img": ["pull", "push"],
    }


@committed
def test_revoked_token_and_removed_membership_stop_working_on_the_next_request(realm, world):
    developer = world["users"]["developer"]
    creds = ("developer", make_token(developer))
    assert realm.access(PUSH, creds=creds) == {f"{SVC}/img": ["pull", "push"]}
    ProjectMember.objects.get(user=developer).delete()
    assert realm.access(PUSH, creds=creds) == {}
    # The API's revocation (a conditional queryset update) clears reused decisions too.
    core_services.revoke_personal_access_token(token=PersonalAccessToken.objects.get(user=developer))
    assert realm.get(PUSH, creds=creds).status_code == 401


@committed
def test_a_finished_ci_job_and_a_project_deleted_through_the_api_stop_at_once(realm, world, make_ci_job):
    from jwt_auth.ci_jobs import finish_ci_job
    from projects.services import request_project_deletion

    job, secret = make_ci_job(world["project"], user=world["users"]["developer"])
    creds = ("gitlab-ci-token", secret)
    for _ in range(2):  # the second decision is kept
        assert realm.get(PUSH, creds=creds).status_code == 200
    finish_ci_job(token_or_id=secret)
    assert realm.get(PUSH, creds=creds).status_code == 401

    owner = ("owner", make_token(world["users"]["owner"]))
    assert realm.access(PUSH, creds=owner) == {f"{SVC}/img": ["pull", "push"]}
    assert realm.access(PUSH, creds=owner) == {f"{SVC}/img": ["pull", "push"]}  # kept now
    request_project_deletion(project=world["project"])
    assert realm.access(PUSH, creds=owner) == {}


@committed
def test_another_credential_with_the_same_scope_and_address_is_decided_afresh(realm, world):
    assert realm.access(PUSH, creds=("developer", make_token(world["users"]["developer"]))) == {
        f"{SVC}/img": ["pull", "push"]
    }
    assert realm.access(PUSH, creds=("reporter", make_token(world["users"]["reporter"]))) == {f"{SVC}/img": ["pull"]}
    assert realm.access(PUSH, creds=("outsider", make_token(world["users"]["outsider"]))) == {}


@committed
def test_a_decision_begun_before_a_change_is_not_kept_nor_kept_past_its_window(settings):
    from jwt_auth import decisions

    decision = decisions.Decision(subject="u", auth_type="personal_access_token", user_info=None, access=())
    started = decisions.begin()
    decisions.clear()  # what a revocation committing meanwhile does
    decisions.remember(b"k1", decision, started)
    assert decisions.lookup(b"k1") is None

    settings.REALM_DECISION_CACHE_SECONDS = 1
    generation, _now = decisions.begin()
    decisions.remember(b"k2", decision, (generation, time.monotonic() - 0.9))  # read 0.9 s ago
    assert decisions.lookup(b"k2") is decision
    time.sleep(0.15)
    assert decisions.lookup(b"k2") is None


@committed
def test_a_revocation_by_another_process_applies_within_the_window(realm, world, settings):
    settings.REALM_DECISION_CACHE_SECONDS = 0.3
    creds = ("developer", make_token(world["users"]["developer"]))
    repositories.ensure_repository_exists(project=world["project"], name="img")
    assert realm.get(PUSH, creds=creds).status_code == 200
    # A queryset update sends no signal: this is what another process's change looks like.
    PersonalAccessToken.objects.update(revoked=True)
    assert realm.get(PUSH, creds=creds).status_code == 200
    time.sleep(0.35)
    assert realm.get(PUSH, creds=creds).status_code == 401


@committed
def test_failures_are_never_reused_so_each_one_is_counted(realm, world, settings):
    settings.AUTH_BAN_MAX_RETRY = 2
    assert realm.get(PUSH, creds=("developer", "wrong-password")).status_code == 401
    # The second identical failure is counted too, and bans the next attempt.
    assert realm.get(PUSH, creds=("developer", "wrong-password")).status_code == 401
    assert realm.get(PUSH, creds=("developer", "wrong-password")).status_code == 403


@committed
def test_a_reused_decision_keeps_no_refusals_and_does_not_log_them_again(realm, world, caplog):
    creds = ("developer", make_token(world["users"]["developer"]))
    repositories.ensure_repository_exists(project=world["project"], name="img")
    scope = f"repository:{SVC}/img:pull,push,delete"
    for _ in range(2):
        assert realm.access(scope, creds=creds) == {f"{SVC}/img": ["pull", "push"]}
    denials = [r for r in caplog.records if r.getMessage() == "Denied container registry permissions"]
    assert len(denials) == 1
    assert tuple(denials[0].granted_actions) == ("pull", "push")


@committed
def test_a_kept_decision_does_not_grow_with_the_scopes_it_refused(realm, world):
    from gitlab_core.ttl_cache import estimate_size
    from jwt_auth import decisions
    from jwt_auth.scopes import MAX_SCOPES
    from jwt_auth.tests.conftest import basic

    creds = ("developer", make_token(world["users"]["developer"]))
    repositories.ensure_repository_exists(project=world["project"], name="img")
    refused = [f"repository:{SVC}/{'x' * 200}{i}:delete" for i in range(MAX_SCOPES - 1)]
    scopes = [f"repository:{SVC}/img:pull", *refused]
    assert realm.access(*scopes, creds=creds) == {f"{SVC}/img": ["pull"]}
    query = "service=container_registry&" + "&".join(f"scope={s}" for s in scopes)
    kept = decisions.lookup(decisions.request_key(basic(*creds), query, "127.0.0.1"))
    assert kept is not None
    assert [entry["name"] for entry in kept.access] == [f"{SVC}/img"]
    assert estimate_size(kept) < 4096


@committed
def test_token_lifetime_change_saved_in_this_process_applies_at_once(realm, world):
    creds = ("developer", make_token(world["users"]["developer"]))
    assert _expires_in(realm, creds) == 300
    core_services.update_application_settings(changes={"container_registry_token_expire_delay": 10})
    assert _expires_in(realm, creds) == 600


@committed
def test_token_lifetime_changed_by_another_process_applies_within_the_window(realm, world, settings):
    settings.REGISTRY_SETTINGS_CACHE_SECONDS = 0.3
    creds = ("developer", make_token(world["users"]["developer"]))
    assert _expires_in(realm, creds) == 300
    # A queryset update sends no signal: this is what another process's change looks like.
    ApplicationSettings.objects.filter(pk=1).update(container_registry_token_expire_delay=10)
    assert _expires_in(realm, creds) == 300
    time.sleep(0.35)
    assert _expires_in(realm, creds) == 600


@committed
def test_lifetime_read_in_a_rolled_back_transaction_is_not_kept(db):
    assert tokens.token_lifetime_seconds() == 300
    with pytest.raises(RuntimeError), transaction.atomic():
        core_services.update_application_settings(changes={"container_registry_token_expire_delay": 20})
        assert tokens.token_lifetime_seconds() == 1200
        raise RuntimeError("roll back")
    assert tokens.token_lifetime_seconds() == 300


@committed
def test_known_repository_row_is_not_queried_again(world):
    project = world["project"]
    repositories.ensure_repository_exists(project=project, name="img")
    with CaptureQueriesContext(connection) as queries:
        repositories.ensure_repository_exists(project=project, name="img")
    assert len(queries) == 0
    assert ContainerRepository.objects.filter(project=project, name="img").count() == 1


@committed
def test_repository_deleted_in_this_process_is_created_again_by_the_next_push(realm, world):
    creds = ("developer", make_token(world["users"]["developer"]))
    realm.access(PUSH, creds=creds)
    ContainerRepository.objects.get(name="img").delete()
    realm.access(PUSH, creds=creds)
    assert ContainerRepository.objects.filter(name="img").exists()


@committed
def test_repository_deleted_by_another_process_is_created_again_after_the_window(realm, world, settings):
    # A window wide enough for two requests on a loaded machine.
    settings.REGISTRY_REPOSITORY_CACHE_SECONDS = 2
    settings.REALM_DECISION_CACHE_SECONDS = 2
    creds = ("developer", make_token(world["users"]["developer"]))
    realm.access(PUSH, creds=creds)
    # Plain SQL sends no signal: what a deletion by the worker process looks like here.
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {ContainerRepository._meta.db_table}")
    realm.access(PUSH, creds=creds)
    assert not ContainerRepository.objects.exists()
    time.sleep(2.1)
    realm.access(PUSH, creds=creds)
    assert ContainerRepository.objects.filter(name="img").exists()


@committed
def test_remembered_repository_being_deleted_is_not_revived(realm, world):
    creds = ("developer", make_token(world["users"]["developer"]))
    realm.access(PUSH, creds=creds)
    ContainerRepository.objects.filter(name="img").update(status=ContainerRepository.Status.DELETE_SCHEDULED)
    assert realm.access(PUSH, creds=creds) == {f"{SVC}/img": ["pull", "push"]}
    assert ContainerRepository.objects.get(name="img").status == ContainerRepository.Status.DELETE_SCHEDULED


# --- inherited access from group paths (one query, no parent walk) --------------------


@pytest.mark.django_db
def test_membership_of_the_top_group_reaches_projects_in_subgroups(realm, world):
    user = make_user("topdev")
    GroupMember.objects.create(group=world["acme"], user=user, access_level=AccessLevel.DEVELOPER)
    assert realm.access(PUSH, creds=("topdev", make_token(user))) == {f"{SVC}/img": ["pull", "push"]}


@pytest.mark.django_db
def test_group_membership_does_not_leak_to_lookalike_paths(realm, db):
    owner = make_user("own")
    # "_" is a LIKE wildcard, and "acme" is a string prefix of "acme-x" but not a parent.
    wildcard = make_group("a_b", owner=owner)
    make_project(make_group("axb", owner=owner), "p", creator=owner)
    prefix = make_group("acme", owner=owner)
    make_project(make_group("acme-x", owner=owner), "p", creator=owner)
    user = make_user("lookalike")
    GroupMember.objects.create(group=wildcard, user=user, access_level=AccessLevel.OWNER)
    GroupMember.objects.create(group=prefix, user=user, access_level=AccessLevel.OWNER)
    creds = ("lookalike", make_token(user))
    assert realm.access("repository:axb/p:pull", "repository:acme-x/p:pull", creds=creds) == {}


@pytest.mark.django_db
def test_expired_group_membership_gives_nothing(realm, world):
    user = make_user("expired")
    GroupMember.objects.create(group=world["acme"], user=user, access_level=AccessLevel.OWNER, expires_at="2000-01-01")
    assert realm.access(PUSH, creds=("expired", make_token(user))) == {}


@pytest.mark.django_db
def test_personal_namespace_owner_owns_its_projects_and_nobody_else_does(realm, db):
    user, other = make_user("solo"), make_user("other")
    make_project(Namespace.objects.get(owner=user), "app")  # no creator: no project membership
    scope = "repository:solo/app:pull,push,delete"
    assert realm.access(scope, creds=("solo", make_token(user))) == {"solo/app": ["pull", "push", "delete"]}
    assert realm.access(scope, creds=("other", make_token(other))) == {}


def test_decision_invalidation_listens_only_to_what_a_decision_reads():
    # A receiver for every sender would turn every bulk delete into row-by-row deletes.
    from django.db.models.signals import post_delete, post_save

    from container_registry.models import RegistryEvent
    from projects.models import Group

    assert post_save.has_listeners(Group) and post_delete.has_listeners(PersonalAccessToken)
    assert not post_delete.has_listeners(RegistryEvent)


@pytest.mark.django_db
def test_a_database_outage_is_a_503_in_the_registry_shape(realm, world):
    from unittest import mock

    from django.db import OperationalError

    creds = ("developer", make_token(world["users"]["developer"]))
    with mock.patch("jwt_auth.services.authorize_and_issue", side_effect=OperationalError("gone")):
        response = realm.get(PUSH, creds=creds)
    assert response.status_code == 503
    assert response.json()["errors"][0]["code"] == "UNAVAILABLE"
    assert response["Cache-Control"] == "no-store"
