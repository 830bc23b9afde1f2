"""``GET /jwt/auth`` through Django's test client: credentials, the role matrix,
visibility, deploy tokens, CI jobs, scope handling and the repository side effect."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from container_registry.models import ContainerRepository
from projects.models import AccessLevel, CiJob, ProjectMember, RegistryAccessLevel, Visibility
from tests_support.factories import make_group, make_project, make_user
from tests_support.wsgi import call_wsgi

SVC = "acme/platform/svc"
ALL = f"repository:{SVC}:pull,push,delete,*"

pytestmark = pytest.mark.django_db


def _set(project, **fields):
    for name, value in fields.items():
        setattr(project, name, value)
    project.save()


# --- request shape -----------------------------------------------------------------------


@pytest.mark.parametrize("service", [None, "", "dependency_proxy", "registry"])
def test_missing_or_unknown_service_is_an_empty_404(realm, service):
    response = realm.get(service=service)
    assert response.status_code == 404
    assert response.content == b""


def test_post_without_a_token_form_is_a_404(client):
    # A POST is distribution's OAuth2 form (test_refresh_tokens.py); the query is not read.
    assert client.post("/jwt/auth?service=container_registry").status_code == 404


def test_login_without_scope_gets_a_token_with_empty_access(realm, world, api_token):
    token = api_token(world["users"]["reporter"])
    response = realm.get(creds=("reporter", token), extra="&account=reporter&client_id=docker&offline_token=true")
    assert response.status_code == 200
    assert realm.claims(response)["access"] == []


def test_anonymous_login_without_scope_is_denied(realm):
    response = realm.get()
    assert response.status_code == 403
    assert response.json() == {"errors": [{"code": "DENIED", "message": "access forbidden"}]}


def test_response_carries_token_twice_with_lifetime_and_issue_time(realm, world, api_token):
    response = realm.get(creds=("x", api_token(world["users"]["owner"])))
    body = response.json()
    assert set(body) == {"token", "access_token", "expires_in", "issued_at"}
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    issued = dt.datetime.strptime(body["issued_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert abs((issued - timezone.now()).total_seconds()) < 5
    assert response["Cache-Control"] == "no-store"


# --- role matrix -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "role,granted",
    [
        ("owner", ["pull", "push", "delete", "*"]),
        ("maintainer", ["pull", "push", "delete", "*"]),
        ("developer", ["pull", "push"]),
        ("reporter", ["pull"]),
        ("guest", None),
        ("outsider", None),
    ],
)
def test_role_matrix_on_a_private_project(realm, world, api_token, role, granted):
    access = realm.access(ALL, creds=(role, api_token(world["users"][role])))
    assert access.get(SVC) == granted


def test_instance_admin_gets_everything_without_membership(realm, world, admin, api_token):
    assert realm.access(ALL, creds=("root", api_token(admin)))[SVC] == ["pull", "push", "delete", "*"]


def test_reporter_asking_push_and_pull_gets_only_pull(realm, world, api_token):
    assert realm.access(f"repository:{SVC}:push,pull", creds=("r", api_token(world["users"]["reporter"]))) == {
        SVC: ["pull"]
    }


def test_expired_membership_gives_nothing(realm, world, api_token):
    ProjectMember.objects.filter(user=world["users"]["developer"]).update(
        expires_at=timezone.now().date() - dt.timedelta(days=1)
    )
    assert realm.access(ALL, creds=("d", api_token(world["users"]["developer"]))) == {}


def test_catalog_is_for_instance_admins_only(realm, world, admin, api_token):
    assert realm.access("registry:catalog:*", creds=("root", api_token(admin))) == {"catalog": ["*"]}
    assert realm.access("registry:catalog:*", creds=("o", api_token(world["users"]["owner"]))) == {}
    assert realm.access("registry:catalog:pull", creds=("root", api_token(admin))) == {}
    assert realm.access("registry:other:*", creds=("root", api_token(admin))) == {}


# --- personal access token scopes --------------------------------------------------------


@pytest.mark.parametrize(
    "scopes,granted",
    [
        (["api"], ["pull", "push", "delete", "*"]),
        (["read_api"], ["pull"]),
        (["read_registry"], ["pull"]),
        (["write_registry"], ["push"]),
        (["read_registry", "write_registry"], ["pull", "push"]),
    ],
)
def test_pat_scopes_limit_what_an_owner_gets(realm, world, api_token, scopes, granted):
    token = api_token(world["users"]["owner"], scopes=scopes)
    assert realm.access(ALL, creds=("owner", token))[SVC] == granted


@pytest.mark.parametrize("scopes", [["read_user"], ["read_repository", "write_repository"]])
def test_pat_without_a_registry_scope_is_denied(realm, world, api_token, scopes):
    response = realm.get(ALL, creds=("owner", api_token(world["users"]["owner"], scopes=scopes)))
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "DENIED"


def test_pat_works_with_any_login(realm, world, api_token):
    token = api_token(world["users"]["developer"])
    assert realm.access(ALL, creds=("someone-else", token))[SVC] == ["pull", "push"]


@pytest.mark.parametrize(
    "extra",
    [
        {"revoked": True},
        {"expires_at": dt.date.today()},
        {"expires_at": dt.date.today() - dt.timedelta(days=3)},
    ],
)
def test_revoked_or_expired_pat_is_401(realm, world, api_token, extra):
    token = api_token(world["users"]["owner"], **extra)
    response = realm.get(ALL, creds=("owner", token))
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_blocked_user_is_refused_with_every_credential(realm, world, api_token):
    owner = world["users"]["owner"]
    token = api_token(owner)
    owner.state = owner.State.BLOCKED
    owner.save()
    assert realm.get(ALL, creds=("owner", token)).status_code == 401
    assert realm.get(ALL, creds=("owner", "password123")).status_code == 401


def test_unknown_secret_is_401_in_registry_shape(realm, world):
    response = realm.get(ALL, creds=("owner", "glpat-not-a-real-token"))
    assert response.status_code == 401
    assert response.json()["errors"][0]["message"].startswith("HTTP Basic: Access denied")


@pytest.mark.parametrize("header", ["Basic !!!notbase64", "Basic Zm9vYmFy", "Basic é", "Basic \u00ff\u00fe=="])
@pytest.mark.parametrize("door", ["django-view", "wsgi-door"])
def test_malformed_basic_header_is_401_in_registry_shape(client, header, door, db):
    if door == "wsgi-door":
        # A WSGI environ carries headers as latin-1 text, as a server decodes them.
        response = call_wsgi("GET", "/jwt/auth", QUERY_STRING="service=container_registry", HTTP_AUTHORIZATION=header)
    else:
        response = client.get("/jwt/auth?service=container_registry", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


# --- passwords ---------------------------------------------------------------------------


def test_password_gives_full_abilities_by_username_or_email(realm, world):
    assert realm.access(ALL, creds=("developer", "password123"))[SVC] == ["pull", "push"]
    assert realm.access(ALL, creds=("Developer@example.test", "password123"))[SVC] == ["pull", "push"]
    assert realm.claims(realm.get(creds=("developer", "password123")))["auth_type"] == "gitlab_or_ldap"


def test_wrong_password_is_401(realm, world):
    assert realm.get(ALL, creds=("developer", "wrong-password")).status_code == 401


def test_two_factor_users_must_use_a_token(realm, world, api_token):
    developer = world["users"]["developer"]
    developer.two_factor_enabled = True
    developer.save()
    assert realm.get(ALL, creds=("developer", "password123")).status_code == 401
    assert realm.access(ALL, creds=("developer", api_token(developer)))[SVC] == ["pull", "push"]


def test_password_logins_can_be_switched_off(realm, world, settings):
    settings.PASSWORD_AUTHENTICATION_ENABLED_FOR_GIT = False
    assert realm.get(ALL, creds=("developer", "password123")).status_code == 401


# --- visibility and the registry access level --------------------------------------------


@pytest.fixture
def public_project(world):
    _set(world["project"], visibility=Visibility.PUBLIC)
    return world["project"]


def test_anonymous_pulls_a_public_project_but_never_pushes(realm, public_project):
    assert realm.access(f"repository:{SVC}:pull,push") == {SVC: ["pull"]}
    response = realm.get(f"repository:{SVC}:push")
    assert response.status_code == 403


def test_public_project_with_private_registry_hides_images_from_non_members(realm, public_project, api_token, world):
    _set(public_project, container_registry_access_level=RegistryAccessLevel.PRIVATE)
    assert realm.get(f"repository:{SVC}:pull").status_code == 403
    assert realm.access(f"repository:{SVC}:pull", creds=("o", api_token(world["users"]["outsider"]))) == {}
    assert realm.access(f"repository:{SVC}:pull", creds=("r", api_token(world["users"]["reporter"]))) == {SVC: ["pull"]}


def test_internal_project_is_pullable_by_signed_in_users_only(realm, world, api_token):
    _set(world["project"], visibility=Visibility.INTERNAL)
    assert realm.get(f"repository:{SVC}:pull").status_code == 403
    assert realm.access(f"repository:{SVC}:pull,push", creds=("o", api_token(world["users"]["outsider"]))) == {
        SVC: ["pull"]
    }
    external = make_user("external", external=True)
    assert realm.access(f"repository:{SVC}:pull", creds=("e", api_token(external))) == {}


def test_anonymous_gets_nothing_from_a_private_project(realm, world):
    assert realm.get(f"repository:{SVC}:pull").status_code == 403


def test_disabled_registry_grants_nothing_even_to_owners_and_admins(realm, world, admin, api_token):
    _set(world["project"], container_registry_access_level=RegistryAccessLevel.DISABLED)
    assert realm.access(ALL, creds=("owner", api_token(world["users"]["owner"]))) == {}
    assert realm.access(ALL, creds=("root", api_token(admin))) == {}


def test_registry_switched_off_instance_wide_is_404_unavailable(realm, world, api_token, settings):
    settings.REGISTRY_ENABLED = False
    response = realm.get(ALL, creds=("owner", api_token(world["users"]["owner"])))
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "UNAVAILABLE"


# --- deploy tokens -----------------------------------------------------------------------


def test_deploy_token_login_must_match_its_username(realm, world, make_deploy_token):
    token, secret = make_deploy_token(world["project"])
    assert realm.access(ALL, creds=(token.username, secret)) == {SVC: ["pull"]}
    assert realm.get(ALL, creds=("someone", secret)).status_code == 401


def test_deploy_token_with_custom_username(realm, world, make_deploy_token):
    _, secret = make_deploy_token(world["project"], scopes=["read_registry", "write_registry"], username="ci-bot")
    assert realm.access(ALL, creds=("ci-bot", secret)) == {SVC: ["pull", "push"]}


def test_deploy_token_never_deletes_and_stays_in_its_project(realm, world, make_deploy_token):
    other = make_project(world["platform"], "other")
    token, secret = make_deploy_token(world["project"], scopes=["read_registry", "write_registry"])
    access = realm.access(ALL, "repository:acme/platform/other:pull", creds=(token.username, secret))
    assert access == {SVC: ["pull", "push"]}
    assert other.pk


def test_deploy_token_claims_have_no_subject_but_identify_the_token(realm, world, make_deploy_token):
    token, secret = make_deploy_token(world["project"])
    claims = realm.claims(realm.get(ALL, creds=(token.username, secret)))
    assert "sub" not in claims
    assert claims["auth_type"] == "deploy_token"


@pytest.mark.parametrize(
    "extra", [{"revoked": True}, {"expires_at": dt.datetime(2000, 1, 1, tzinfo=dt.UTC)}], ids=["revoked", "expired"]
)
def test_revoked_or_expired_deploy_token_is_401(realm, world, make_deploy_token, extra):
    token, secret = make_deploy_token(world["project"], **extra)
    assert realm.get(ALL, creds=(token.username, secret)).status_code == 401


def test_deploy_token_without_registry_scope_is_denied(realm, world, make_deploy_token):
    token, secret = make_deploy_token(world["project"], scopes=["read_repository"])
    assert realm.get(ALL, creds=(token.username, secret)).status_code == 403


def test_group_deploy_token_reaches_every_project_of_its_group_and_subgroups(realm, world, make_deploy_token):
    top = make_project(world["acme"], "top")
    sibling_group = make_group("acme2")
    outside = make_project(sibling_group, "app")
    token, secret = make_deploy_token(world["acme"], scopes=["read_registry", "write_registry"])
    access = realm.access(
        ALL,
        "repository:acme/top/img:pull,push",
        f"repository:{outside.full_path}:pull,push",
        creds=(token.username, secret),
    )
    # The subgroup's project and the group's own; never "acme2", whose path only starts alike.
    assert access == {SVC: ["pull", "push"], "acme/top/img": ["pull", "push"]}
    assert top.pk


def test_group_deploy_token_of_a_subgroup_does_not_reach_its_parent(realm, world, make_deploy_token):
    make_project(world["acme"], "top")
    token, secret = make_deploy_token(world["platform"])
    access = realm.access(f"repository:{SVC}:pull", "repository:acme/top:pull", creds=(token.username, secret))
    assert access == {SVC: ["pull"]}


def test_a_deploy_token_pulls_what_anonymous_may_pull_elsewhere(realm, world, make_deploy_token):
    public = make_project(make_group("pub", visibility="public"), "app", visibility="public")
    private_registry = make_project(make_group("pub2", visibility="public"), "app", visibility="public")
    _set(private_registry, container_registry_access_level=RegistryAccessLevel.PRIVATE)
    token, secret = make_deploy_token(world["project"], scopes=["read_registry", "write_registry"])
    scopes = [f"repository:{p.full_path}:pull,push" for p in (public, private_registry)]
    # Pull as anonymous would; never push, and nothing where anonymous gets nothing.
    assert realm.access(*scopes, creds=(token.username, secret)) == {public.full_path: ["pull"]}


def test_a_revoked_group_deploy_token_is_401(realm, world, make_deploy_token):
    token, secret = make_deploy_token(world["acme"], revoked=True)
    assert realm.get(ALL, creds=(token.username, secret)).status_code == 401


# --- CI job tokens -----------------------------------------------------------------------


def test_ci_job_pulls_pushes_and_deletes_in_its_own_project_but_never_star(realm, world, make_ci_job):
    _, secret = make_ci_job(world["project"], user=world["users"]["developer"])
    response = realm.get(ALL, creds=("gitlab-ci-token", secret))
    claims = realm.claims(response)
    assert {e["name"]: e["actions"] for e in claims["access"]} == {SVC: ["pull", "push", "delete"]}
    assert claims["sub"] == "developer"
    assert claims["auth_type"] == "build"


def test_ci_job_only_pulls_from_other_projects_where_its_user_is_a_member(realm, world, make_ci_job):
    team = make_project(world["platform"], "team")
    secret_project = make_project(world["platform"], "secret")
    ProjectMember.objects.create(project=team, user=world["users"]["developer"], access_level=AccessLevel.REPORTER)
    _, secret = make_ci_job(world["project"], user=world["users"]["developer"])
    access = realm.access(
        "repository:acme/platform/team:pull,push",
        "repository:acme/platform/secret:pull",
        creds=("gitlab-ci-token", secret),
    )
    assert access == {"acme/platform/team": ["pull"]}
    assert secret_project.pk


@pytest.mark.parametrize(
    ("visibility", "registry", "member_level", "pulls"),
    [
        ("private", RegistryAccessLevel.ENABLED, AccessLevel.GUEST, False),
        ("private", RegistryAccessLevel.ENABLED, AccessLevel.REPORTER, True),
        ("internal", RegistryAccessLevel.PRIVATE, AccessLevel.GUEST, False),
        ("internal", RegistryAccessLevel.ENABLED, AccessLevel.GUEST, True),
        ("public", RegistryAccessLevel.ENABLED, None, True),
    ],
)
def test_ci_job_pulls_from_another_project_only_where_its_user_may_read_the_images(
    realm, world, make_ci_job, visibility, registry, member_level, pulls
):
    other = make_project(world["platform"], "other", visibility=visibility)
    other.container_registry_access_level = registry
    other.save()
    if member_level is not None:
        ProjectMember.objects.create(project=other, user=world["users"]["developer"], access_level=member_level)
    _, secret = make_ci_job(world["project"], user=world["users"]["developer"])
    access = realm.access("repository:acme/platform/other:pull", creds=("gitlab-ci-token", secret))
    assert access == ({"acme/platform/other": ["pull"]} if pulls else {})


def test_finished_ci_job_token_no_longer_works(realm, world, make_ci_job):
    _, secret = make_ci_job(world["project"], user=world["users"]["developer"], status=CiJob.Status.SUCCESS)
    assert realm.get(ALL, creds=("gitlab-ci-token", secret)).status_code == 401


def test_ci_job_of_a_blocked_user_is_refused(realm, world, make_ci_job):
    developer = world["users"]["developer"]
    _, secret = make_ci_job(world["project"], user=developer)
    developer.state = developer.State.BLOCKED
    developer.save()
    assert realm.get(ALL, creds=("gitlab-ci-token", secret)).status_code == 401


def test_ci_job_token_needs_the_ci_login(realm, world, make_ci_job):
    _, secret = make_ci_job(world["project"], user=world["users"]["developer"])
    assert realm.get(ALL, creds=("developer", secret)).status_code == 401


def test_userless_ci_job_is_type_ci_without_subject(realm, world, make_ci_job):
    _, secret = make_ci_job(world["project"])
    claims = realm.claims(realm.get(f"repository:{SVC}:pull", creds=("gitlab-ci-token", secret)))
    assert claims["auth_type"] == "ci"
    assert "sub" not in claims
    assert claims["access"][0]["actions"] == ["pull"]


# --- scopes and paths --------------------------------------------------------------------


def test_nested_image_paths_resolve_to_the_project_up_to_two_levels(realm, world, api_token):
    token = api_token(world["users"]["developer"])
    scopes = [f"repository:{SVC}{suffix}:pull" for suffix in ("", "/a", "/a/b", "/a/b/c")]
    assert realm.access(*scopes, creds=("d", token)) == {SVC: ["pull"], f"{SVC}/a": ["pull"], f"{SVC}/a/b": ["pull"]}


def test_longest_matching_project_path_wins(realm, world, api_token):
    # Group acme/platform/svc-tools holds project acme/platform/svc-tools/x; the image
    # acme/platform/svc/x/y belongs to acme/platform/svc.
    make_project(world["acme"], "platform-tools")
    owner = world["users"]["owner"]
    nested = make_group("svcgroup", parent=world["platform"], owner=owner)
    make_project(nested, "app", creator=owner)
    access = realm.access(
        "repository:acme/platform/svcgroup/app/img:pull",
        f"repository:{SVC}/svcgroup:pull",
        creds=("o", api_token(owner)),
    )
    claims = realm.claims(realm.get("repository:acme/platform/svcgroup/app/img:pull", creds=("o", api_token(owner))))
    assert claims["access"][0]["meta"]["project_path"] == "acme/platform/svcgroup/app"
    assert access == {"acme/platform/svcgroup/app/img": ["pull"], f"{SVC}/svcgroup": ["pull"]}


def test_path_is_lower_cased_in_the_token(realm, world, api_token):
    token = api_token(world["users"]["reporter"])
    assert realm.access("repository:ACME/Platform/SVC/Img:pull", creds=("r", token)) == {f"{SVC}/img": ["pull"]}


def test_junk_scopes_are_dropped_without_error(realm, world, api_token):
    token = api_token(world["users"]["developer"])
    scopes = [
        "repository:acme/platform/svc",  # GitLab answers this one with a 500
        "repository",
        "repository(plugin):acme/platform/svc:pull",
        "unknown:acme/platform/svc:pull",
        "repository:acme/platform/nope:pull",
        "repository:acme/platform/svc/-bad:pull",
        "repository:acme/platform/svc:foo,pull,bar",
        "repository:%ZZ:pull",
    ]
    response = realm.get(*scopes, creds=("d", token))
    assert response.status_code == 200
    assert {e["name"]: e["actions"] for e in realm.claims(response)["access"]} == {SVC: ["pull"]}


def test_repeated_and_space_separated_scopes_are_all_granted(realm, world, api_token):
    token = api_token(world["users"]["developer"])
    response = realm.get(
        f"repository:{SVC}/a:pull",
        f"repository:{SVC}/b:push+repository:{SVC}/c:pull",
        f"repository:{SVC}/a:pull",
        creds=("d", token),
    )
    names = [e["name"] for e in realm.claims(response)["access"]]
    assert names == [f"{SVC}/a", f"{SVC}/b", f"{SVC}/c"]


def test_access_entry_carries_project_meta(realm, world, api_token):
    claims = realm.claims(realm.get(f"repository:{SVC}/img:pull", creds=("r", api_token(world["users"]["reporter"]))))
    project = world["project"]
    assert claims["access"] == [
        {
            "type": "repository",
            "name": f"{SVC}/img",
            "actions": ["pull"],
            "meta": {"project_path": SVC, "project_id": project.pk, "root_namespace_id": world["acme"].pk},
        }
    ]


def test_project_pending_deletion_grants_nothing(realm, world, api_token):
    _set(world["project"], pending_delete=True)
    assert realm.access(ALL, creds=("o", api_token(world["users"]["owner"]))) == {}


# --- repository rows ---------------------------------------------------------------------


def test_granted_push_creates_the_repository_row_once(realm, world, api_token):
    token = api_token(world["users"]["developer"])
    realm.access(f"repository:{SVC}:pull,push", f"repository:{SVC}/a/b:push", creds=("d", token))
    realm.access(f"repository:{SVC}:pull,push", creds=("d", token))
    names = sorted(ContainerRepository.objects.filter(project=world["project"]).values_list("name", flat=True))
    assert names == ["", "a/b"]


def test_pull_or_refused_push_creates_nothing(realm, world, api_token):
    realm.access(f"repository:{SVC}/img:pull,push", creds=("r", api_token(world["users"]["reporter"])))
    assert not ContainerRepository.objects.exists()


def test_repository_being_deleted_is_not_revived_but_push_is_still_granted(realm, world, api_token):
    ContainerRepository.objects.create(
        project=world["project"], name="img", status=ContainerRepository.Status.DELETE_SCHEDULED
    )
    access = realm.access(f"repository:{SVC}/img:pull,push", creds=("d", api_token(world["users"]["developer"])))
    assert access == {f"{SVC}/img": ["pull", "push"]}
    assert ContainerRepository.objects.get().status == ContainerRepository.Status.DELETE_SCHEDULED


# --- logging -----------------------------------------------------------------------------


def test_denied_actions_are_logged_with_actor_and_without_secrets(realm, world, api_token, caplog):
    token = api_token(world["users"]["reporter"])
    with caplog.at_level("WARNING", logger="jwt_auth"):
        realm.get(f"repository:{SVC}:pull,push", creds=("reporter", token))
        realm.get(f"repository:{SVC}:pull", creds=("reporter", "wrong-secret-value"))
    denied = [r for r in caplog.records if r.getMessage() == "Denied container registry permissions"]
    assert len(denied) == 1
    assert denied[0].requested_actions == ["pull", "push"]
    assert denied[0].granted_actions == ["pull"]
    assert denied[0].actor == "reporter"
    failed = [r for r in caplog.records if r.getMessage() == "JWT authentication failed"]
    assert failed[0].login == "reporter"
    for record in caplog.records:
        dumped = repr(record.__dict__)
        assert token not in dumped
        assert "wrong-secret-value" not in dumped


def test_token_response_is_json_and_the_token_verifies_as_pyjwt_would_write_it(realm, world, rsa_key):
    import json

    import jwt as pyjwt

    from jwt_auth.keys import load_key

    response = realm.get(ALL, creds=("developer", "password123"))
    body = json.loads(response.content)
    assert set(body) == {"token", "access_token", "expires_in", "issued_at"}
    assert body["token"] == body["access_token"] and isinstance(body["expires_in"], int)
    header = pyjwt.get_unverified_header(body["token"])
    assert header["alg"] == "RS256" and header["typ"] == "JWT" and header["kid"] and header["x5c"]
    # Byte for byte what PyJWT makes of the same header and claims (RS256 is deterministic).
    claims = realm.claims(response)
    private_key = load_key(rsa_key.key_path, rsa_key.cert_path).private_key
    again = pyjwt.encode(claims, private_key, algorithm="RS256", headers={"kid": header["kid"], "x5c": header["x5c"]})
    assert again == body["token"]
