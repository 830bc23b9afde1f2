"""Protected container repositories against the real registry and skopeo: a Developer's
push to a protected path is refused, a Maintainer's goes through, a deploy token with
write access is held back, and pulls are untouched."""

from __future__ import annotations

import pytest

from projects.models import ContainerRepositoryProtectionRule, ProtectionLevel
from tests_support.factories import make_token
from tests_support.registry import build_image, skopeo

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SVC = "acme/platform/svc"


def test_protected_repository_with_skopeo(registry, world, tmp_path, make_deploy_token):
    users, project = world["users"], world["project"]
    ContainerRepositoryProtectionRule.objects.create(
        project=project,
        repository_path_pattern=f"{SVC}/release*",
        minimum_access_level_for_push=ProtectionLevel.MAINTAINER,
    )
    image = build_image(tmp_path / "oci", size=2048, seed="protected")
    developer = f"developer:{make_token(users['developer'])}"
    maintainer = f"maintainer:{make_token(users['maintainer'])}"
    token, secret = make_deploy_token(project, scopes=("read_registry", "write_registry"))

    refused = skopeo("copy", image, registry.ref(f"{SVC}/release"), creds=developer, check=False)
    assert refused.returncode != 0
    assert "403 (Forbidden)" in refused.stderr
    skopeo("copy", image, registry.ref(f"{SVC}/dev"), creds=developer)

    skopeo("copy", image, registry.ref(f"{SVC}/release"), creds=maintainer)
    skopeo("inspect", registry.ref(f"{SVC}/release"), creds=developer)

    by_token = skopeo(
        "copy", image, registry.ref(f"{SVC}/release", "v2"), creds=f"{token.username}:{secret}", check=False
    )
    assert by_token.returncode != 0 and "403 (Forbidden)" in by_token.stderr
    skopeo("inspect", registry.ref(f"{SVC}/release"), creds=f"{token.username}:{secret}")
