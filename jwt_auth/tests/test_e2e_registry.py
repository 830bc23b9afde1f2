"""The realm against the real registry (distribution 2.8) and client (skopeo).

The registry must accept exactly what ``/jwt/auth`` granted and refuse the rest.
"""

from __future__ import annotations

import pytest
import requests

from jwt_auth.keys import certificate_bundle
from jwt_auth.tests.conftest import KeyPair
from jwt_auth.tokens import mint_registry_token
from projects.models import AccessLevel, ProjectMember, RegistryAccessLevel, Visibility
from tests_support.factories import make_group, make_project, make_token, make_user
from tests_support.registry import build_image, create_registry, skopeo

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SVC = "acme/platform/svc"


@pytest.fixture
def image(tmp_path):
    return build_image(tmp_path / "oci", size=2048, seed="jwt")


def _creds(user, scopes=("api",)) -> str:
    return f"{user.username}:{make_token(user, scopes=list(scopes))}"


def push(registry, image, path, creds, *, check=True):
    return skopeo("copy", image, registry.ref(path), creds=creds, check=check)


def ok(result) -> bool:
    return result.returncode == 0


def refused(result) -> bool:
    """Failed, and because of authorization (not a broken image or a crash)."""
    output = (result.stdout + result.stderr).lower()
    return result.returncode != 0 and any(w in output for w in ("denied", "unauthorized", "401", "403 (forbidden)"))


def _save(project, **fields):
    for name, value in fields.items():
        setattr(project, name, value)
    project.save()


def test_each_role_gets_exactly_its_actions(registry, world, image):
    users = world["users"]
    owner, developer, maintainer = _creds(users["owner"]), _creds(users["developer"]), _creds(users["maintainer"])
    reporter, guest, outsider = _creds(users["reporter"]), _creds(users["guest"]), _creds(users["outsider"])
    push(registry, image, SVC, owner)
    push(registry, image, f"{SVC}/dev", developer)

    assert ok(skopeo("inspect", registry.ref(SVC), creds=reporter))
    assert "latest" in skopeo("list-tags", f"docker://{registry.host_port}/{SVC}", creds=reporter).stdout
    assert refused(push(registry, image, f"{SVC}/rep", reporter, check=False))
    for creds in (guest, outsider, None):
        assert refused(skopeo("inspect", registry.ref(SVC), creds=creds, check=False))

    assert refused(skopeo("delete", registry.ref(f"{SVC}/dev"), creds=developer, check=False))
    assert ok(skopeo("delete", registry.ref(f"{SVC}/dev"), creds=maintainer))
    gone = skopeo("inspect", registry.ref(f"{SVC}/dev"), creds=maintainer, check=False)
    assert gone.returncode != 0 and "manifest unknown" in gone.stderr


def test_personal_access_token_scopes(registry, world, image):
    owner = world["users"]["owner"]
    push(registry, image, SVC, _creds(owner))
    read = _creds(owner, ["read_registry"])
    assert ok(skopeo("inspect", registry.ref(SVC), creds=read))
    assert refused(push(registry, image, f"{SVC}/r", read, check=False))
    # write_registry alone grants push without pull; the registry needs both to upload.
    assert refused(push(registry, image, f"{SVC}/w", _creds(owner, ["write_registry"]), check=False))
    assert ok(push(registry, image, f"{SVC}/rw", _creds(owner, ["read_registry", "write_registry"])))
    assert refused(skopeo("delete", registry.ref(f"{SVC}/rw"), creds=_creds(owner, ["read_api"]), check=False))
    assert ok(skopeo("delete", registry.ref(f"{SVC}/rw"), creds=_creds(owner, ["api"])))
    assert refused(skopeo("inspect", registry.ref(SVC), creds=_creds(owner, ["read_user"]), check=False))


def test_deploy_token_and_ci_job_token(registry, world, image, make_deploy_token, make_ci_job):
    project = world["project"]
    token, secret = make_deploy_token(project, scopes=["read_registry", "write_registry"])
    deploy = f"{token.username}:{secret}"
    assert ok(push(registry, image, SVC, deploy))
    assert ok(skopeo("inspect", registry.ref(SVC), creds=deploy))
    assert refused(skopeo("inspect", registry.ref(SVC), creds=f"someone:{secret}", check=False))
    assert refused(skopeo("delete", registry.ref(SVC), creds=deploy, check=False))

    job, job_secret = make_ci_job(project, user=world["users"]["developer"])
    ci = f"gitlab-ci-token:{job_secret}"
    assert ok(push(registry, image, f"{SVC}/ci", ci))
    assert ok(skopeo("inspect", registry.ref(f"{SVC}/ci"), creds=ci))
    job.status = "success"
    job.save()
    assert refused(skopeo("inspect", registry.ref(f"{SVC}/ci"), creds=ci, check=False))


def test_group_deploy_token_pushes_and_pulls_in_a_subgroups_project_only(registry, world, image, make_deploy_token):
    outside = make_project(make_group("elsewhere", owner=world["users"]["owner"]), "app")
    token, secret = make_deploy_token(world["acme"], scopes=["read_registry", "write_registry"])
    group_deploy = f"{token.username}:{secret}"
    # acme/platform/svc is a project of a subgroup of acme.
    assert ok(push(registry, image, f"{SVC}/fleet", group_deploy))
    assert ok(skopeo("inspect", registry.ref(f"{SVC}/fleet"), creds=group_deploy))
    assert refused(push(registry, image, f"{outside.full_path}/fleet", group_deploy, check=False))
    push(registry, image, outside.full_path, _creds(world["users"]["owner"]))
    assert refused(skopeo("inspect", registry.ref(outside.full_path), creds=group_deploy, check=False))
    token.revoked = True
    token.save()
    assert refused(skopeo("inspect", registry.ref(f"{SVC}/fleet"), creds=group_deploy, check=False))


def test_a_project_deploy_token_pulls_another_projects_public_image(registry, world, image, make_deploy_token):
    owner = world["users"]["owner"]
    public = make_project(make_group("pub", owner=owner, visibility="public"), "app", visibility="public")
    push(registry, image, public.full_path, _creds(owner))
    token, secret = make_deploy_token(world["project"], scopes=["read_registry", "write_registry"])
    deploy = f"{token.username}:{secret}"
    # What anonymous may do, the deploy token of another project may do too; no more.
    assert ok(skopeo("inspect", registry.ref(public.full_path), creds=None))
    assert ok(skopeo("inspect", registry.ref(public.full_path), creds=deploy))
    assert refused(push(registry, image, f"{public.full_path}/mine", deploy, check=False))


def test_cross_project_blob_mount_needs_pull_on_the_source(registry, world, image):
    owner = world["users"]["owner"]
    other = make_project(world["platform"], "other", creator=owner)
    push(registry, image, SVC, _creds(owner))
    source, target = registry.ref(SVC), registry.ref("acme/platform/other/copy")
    assert ok(skopeo("copy", source, target, creds=_creds(owner)))
    assert ok(skopeo("inspect", target, creds=_creds(owner)))
    # A developer of the target only, who cannot read the source, cannot copy from it.
    stranger = make_user("stranger")
    ProjectMember.objects.create(project=other, user=stranger, access_level=AccessLevel.DEVELOPER)
    assert refused(skopeo("copy", source, registry.ref("acme/platform/other/x"), creds=_creds(stranger), check=False))


def test_anonymous_access_follows_visibility_and_the_registry_switch(registry, world, image):
    project, owner = world["project"], world["users"]["owner"]
    outsider = _creds(world["users"]["outsider"])
    push(registry, image, SVC, _creds(owner))
    _save(project, visibility=Visibility.PUBLIC)
    assert ok(skopeo("inspect", registry.ref(SVC)))
    assert refused(push(registry, image, f"{SVC}/anon", None, check=False))
    _save(project, visibility=Visibility.INTERNAL)
    assert refused(skopeo("inspect", registry.ref(SVC), check=False))
    assert ok(skopeo("inspect", registry.ref(SVC), creds=outsider))
    _save(project, visibility=Visibility.PRIVATE)
    assert refused(skopeo("inspect", registry.ref(SVC), creds=outsider, check=False))
    _save(project, container_registry_access_level=RegistryAccessLevel.DISABLED)
    assert refused(skopeo("inspect", registry.ref(SVC), creds=_creds(owner), check=False))


def test_nested_image_paths_up_to_two_levels(registry, world, image):
    owner = _creds(world["users"]["owner"])
    for path in (SVC, f"{SVC}/a", f"{SVC}/a/b"):
        assert ok(push(registry, image, path, owner)), path
    assert refused(push(registry, image, f"{SVC}/a/b/c", owner, check=False))


def test_expired_token_is_refused_and_catalog_needs_an_admin(registry, live_server, world, image, admin):
    push(registry, image, SVC, _creds(world["users"]["owner"]))
    url = f"{registry.url}/v2/{SVC}/tags/list"
    access = [{"type": "repository", "name": SVC, "actions": ["pull"]}]
    fresh, _ = mint_registry_token(access=access)
    assert requests.get(url, headers={"Authorization": f"Bearer {fresh}"}, timeout=10).status_code == 200
    # The registry allows 60 s of clock skew; this one expired two minutes ago.
    expired, _ = mint_registry_token(access=access, lifetime=-120)
    response = requests.get(url, headers={"Authorization": f"Bearer {expired}"}, timeout=10)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["Www-Authenticate"]

    for user, expected in ((admin, 200), (world["users"]["owner"], 401)):
        token = requests.get(
            f"{live_server.url}/jwt/auth?service=container_registry&scope=registry:catalog:*",
            auth=(user.username, make_token(user)),
            timeout=10,
        ).json()["token"]
        catalog = requests.get(f"{registry.url}/v2/_catalog", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert catalog.status_code == expected


def test_key_rotation_keeps_old_tokens_working_while_their_cert_is_bundled(
    live_server, settings, world, image, tmp_path
):
    from tests_support.registry_fixtures import _require_tools

    _require_tools()
    old, new = KeyPair(tmp_path, "old"), KeyPair(tmp_path, "new")
    settings.REGISTRY_KEY_PATH, settings.REGISTRY_CERT_PATH = str(new.key_path), None
    settings.REGISTRY_EXTRA_KEY_PATHS = [str(old.key_path)]
    bundle = tmp_path / "bundle.pem"
    bundle.write_text(certificate_bundle())

    def start(bundle_path, name):
        instance = create_registry(
            work_dir=tmp_path / name,
            realm=f"{live_server.url}/jwt/auth",
            issuer=settings.REGISTRY_ISSUER,
            cert_bundle=bundle_path,
            notification_url=None,
            notification_secret="",
        )
        instance.start()
        return instance

    registry = start(bundle, "both")
    try:
        owner = _creds(world["users"]["owner"])
        settings.REGISTRY_KEY_PATH, settings.REGISTRY_EXTRA_KEY_PATHS = str(old.key_path), [str(new.key_path)]
        assert ok(push(registry, image, SVC, owner))
        access = [{"type": "repository", "name": SVC, "actions": ["pull"]}]
        old_token, _ = mint_registry_token(access=access)
        # Rotate: the new key signs, the old one stays in the bundle.
        settings.REGISTRY_KEY_PATH, settings.REGISTRY_EXTRA_KEY_PATHS = str(new.key_path), [str(old.key_path)]
        assert ok(skopeo("inspect", registry.ref(SVC), creds=owner))
        url = f"{registry.url}/v2/{SVC}/tags/list"
        assert requests.get(url, headers={"Authorization": f"Bearer {old_token}"}, timeout=10).status_code == 200
    finally:
        registry.stop()

    # Once the old certificate leaves the bundle, its tokens stop working.
    new_only = tmp_path / "new-only.pem"
    new_only.write_text(new.cert_path.read_text())
    registry = start(new_only, "new-only")
    try:
        url = f"{registry.url}/v2/"
        assert requests.get(url, headers={"Authorization": f"Bearer {old_token}"}, timeout=10).status_code == 401
        new_token, _ = mint_registry_token(access=[])
        assert requests.get(url, headers={"Authorization": f"Bearer {new_token}"}, timeout=10).status_code == 200
    finally:
        registry.stop()
