from __future__ import annotations

from container_registry.models import ContainerExpirationPolicy
from projects import permissions


def test_new_project_gets_a_disabled_default_cleanup_policy(world):
    policy = ContainerExpirationPolicy.objects.get(project=world["project"])
    assert (policy.enabled, policy.cadence, policy.keep_n, policy.older_than, policy.name_regex) == (
        False,
        "1d",
        10,
        "90d",
        ".*",
    )
    assert policy.next_run_at is not None


def test_role_matrix_for_registry_abilities(world):
    project = world["project"]
    expect = {
        "owner": {"read_container_image", "create_container_image", "admin_container_image"},
        "maintainer": {"read_container_image", "create_container_image", "admin_container_image"},
        "developer": {"read_container_image", "create_container_image"},
        "reporter": {"read_container_image"},
        "guest": set(),
        "outsider": set(),
    }
    for role, wanted in expect.items():
        got = permissions.project_abilities(world["users"][role], project)
        registry = got & {"read_container_image", "create_container_image", "admin_container_image"}
        assert registry == wanted, role
    assert permissions.project_abilities(None, project) == frozenset()
