"""The audit log: what the services record, who and where from, and ``GET /audit_events``."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from gitlab_core import audit, login_failures, services
from gitlab_core.errors import ServiceError
from gitlab_core.models import AuditEvent, LoginFailures, PersonalAccessToken
from tests_support.factories import make_token, make_user

pytestmark = pytest.mark.django_db


def client_with(secret: str, address: str = "203.0.113.7") -> APIClient:
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_PRIVATE_TOKEN=secret)
    return client


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def as_admin(admin):
    return client_with(make_token(admin))


def events(event_name: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event_name=event_name).order_by("id"))


# --- what is recorded ----------------------------------------------------------------------


def test_a_token_created_through_the_api_is_audited_with_author_target_and_address(admin, alice, as_admin):
    response = as_admin.post(
        f"/api/v4/users/{alice.pk}/personal_access_tokens", {"name": "ci", "scopes": ["api"]}, format="json"
    )
    assert response.status_code == 201

    [event] = events("personal_access_token_created")
    token_id = response.json()["id"]
    assert (event.author_id, event.entity_type, event.entity_id) == (admin.pk, "User", alice.pk)
    assert event.details == {
        "author_name": admin.name,
        "custom_message": f"Created personal access token with id {token_id}",
        "target_id": token_id,
        "target_type": "PersonalAccessToken",
        "target_details": f"ci ({alice.username})",
        "ip_address": "203.0.113.7",
        "entity_path": "alice",
    }


def test_rotating_and_revoking_a_token_are_audited_as_its_owner(alice):
    client = client_with(make_token(alice))
    rotated = client.post("/api/v4/personal_access_tokens/self/rotate").json()
    client_with(rotated["token"]).delete("/api/v4/personal_access_tokens/self")

    [rotation] = events("personal_access_token_rotated")
    [revocation] = events("personal_access_token_revoked")
    assert rotation.author_id == revocation.author_id == alice.pk
    assert rotation.target_id == revocation.target_id == rotated["id"]


def test_rotating_a_revoked_token_again_audits_the_family_revocation(alice):
    token, _ = services.create_personal_access_token(user=alice, name="ci", scopes=["api"])
    services.rotate_personal_access_token(token=token)
    with pytest.raises(ServiceError):
        services.rotate_personal_access_token(token=token)

    [event] = events("personal_access_token_family_revoked")
    assert event.target_id == token.pk and "rotated again" in event.details["custom_message"]


def test_without_a_request_the_author_is_the_system(alice):
    services.create_personal_access_token(user=alice, name="cli", scopes=["read_registry"])

    [event] = events("personal_access_token_created")
    assert (event.author_id, event.author_name, event.ip_address) == (-1, "(system)", "")
    assert event.details["author_name"] == "(system)" and event.details["ip_address"] is None


def test_each_changed_application_setting_is_one_event_with_from_and_to(admin, as_admin):
    response = as_admin.put(
        "/api/v4/application/settings",
        {"container_registry_token_expire_delay": 15, "signup_enabled": False, "default_projects_limit": 7},
        format="json",
    )
    assert response.status_code == 200

    changes = {(e.details["change"], e.details["from"], e.details["to"]) for e in events("application_setting_updated")}
    # signup_enabled was already false: no event for it.
    assert changes == {("container_registry_token_expire_delay", 5, 15), ("default_projects_limit", 100000, 7)}
    assert {e.entity_type for e in events("application_setting_updated")} == {"Gitlab::Audit::InstanceScope"}


def test_a_refused_change_records_no_event(as_admin):
    response = as_admin.put("/api/v4/application/settings", {"container_registry_token_expire_delay": 0})
    assert response.status_code == 400

    assert not AuditEvent.objects.exists()


def test_an_event_is_rolled_back_with_its_change(alice):
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        services.create_personal_access_token(user=alice, name="ci", scopes=["api"])
        raise RuntimeError("the caller's transaction fails after the service")

    assert not PersonalAccessToken.objects.exists()
    assert not AuditEvent.objects.exists()


def test_a_user_created_through_the_api_is_audited(admin, as_admin):
    response = as_admin.post(
        "/api/v4/users",
        {"email": "bob@example.test", "username": "bob", "name": "Bob", "password": "long-enough-1", "admin": True},
        format="json",
    )
    assert response.status_code == 201

    [event] = events("user_created")
    assert (event.author_id, event.entity_id, event.details["custom_message"]) == (
        admin.pk,
        response.json()["id"],
        "Created administrator",
    )


def test_a_realm_ban_and_its_lifting_are_audited_with_the_client_address(settings):
    policy = login_failures.Policy(kind=LoginFailures.Kind.REALM, max_failures=3, find_time=60, ban_time=600)
    for _ in range(5):
        login_failures.record_failure(policy, address="198.51.100.9", login="Mallory")

    [ban] = events("login_ban_started")
    assert (ban.author_id, ban.ip_address, ban.entity_type) == (-1, "198.51.100.9", "Gitlab::Audit::InstanceScope")
    assert ban.target_details == "realm: mallory from 198.51.100.9"
    assert "Registry login banned until" in ban.details["custom_message"]
    # Failures before and after the ban are counted, not audited.
    assert AuditEvent.objects.count() == 1

    login_failures.lift(login_failures.matching("198.51.100.9"), by="command")
    [lift] = events("login_ban_lifted")
    assert lift.details["custom_message"] == "Registry login ban lifted by command"


def test_a_name_holding_a_token_is_redacted_in_the_event(alice):
    secret = make_token(alice)
    services.create_personal_access_token(user=alice, name=f"copy of {secret}", scopes=["api"])

    [event] = events("personal_access_token_created")
    assert secret not in event.target_details and "[FILTERED]" in event.target_details


# --- GET /audit_events ---------------------------------------------------------------------


def test_admins_list_events_newest_first_in_gitlabs_shape(admin, alice, as_admin):
    first, _ = services.create_personal_access_token(user=alice, name="one", scopes=["api"])
    second, _ = services.create_personal_access_token(user=alice, name="two", scopes=["api"])

    response = as_admin.get("/api/v4/audit_events")

    assert response.status_code == 200
    body = response.json()
    assert [e["details"]["target_id"] for e in body] == [second.pk, first.pk]
    assert set(body[0]) == {"id", "author_id", "entity_id", "entity_type", "event_name", "details", "created_at"}
    assert body[0]["entity_type"] == "User" and body[0]["entity_id"] == alice.pk
    assert response["X-Total"] == "2"


def test_events_are_filtered_by_entity_and_time(admin, alice, as_admin):
    bob = make_user("bob")
    services.create_personal_access_token(user=alice, name="a", scopes=["api"])
    services.create_personal_access_token(user=bob, name="b", scopes=["api"])
    old = AuditEvent.objects.get(entity_id=alice.pk)
    AuditEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=3))

    by_entity = as_admin.get("/api/v4/audit_events", {"entity_type": "User", "entity_id": bob.pk}).json()
    since = (timezone.now() - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    recent = as_admin.get("/api/v4/audit_events", {"created_after": since}).json()
    before = as_admin.get("/api/v4/audit_events", {"created_before": since}).json()

    assert [e["entity_id"] for e in by_entity] == [bob.pk]
    assert [e["entity_id"] for e in recent] == [bob.pk]
    assert [e["entity_id"] for e in before] == [alice.pk]


def test_pages_are_bounded(admin, alice, as_admin):
    for n in range(3):
        services.create_personal_access_token(user=alice, name=f"t{n}", scopes=["api"])

    response = as_admin.get("/api/v4/audit_events", {"per_page": 2, "page": 2})

    assert len(response.json()) == 1
    assert (response["X-Total"], response["X-Total-Pages"]) == ("3", "2")


@pytest.mark.parametrize(
    "params",
    [
        {"entity_type": "Nope"},
        {"entity_id": "x"},
        {"created_after": "yesterday"},
        {"created_before": "2024-13-45"},
    ],
)
def test_bad_filters_are_a_400_in_gitlabs_shape(as_admin, params):
    response = as_admin.get("/api/v4/audit_events", params)

    assert response.status_code == 400
    assert "error" in response.json()


def test_one_event_by_id_and_a_missing_one_is_404(alice, as_admin):
    token, _ = services.create_personal_access_token(user=alice, name="a", scopes=["api"])
    event = AuditEvent.objects.get()

    assert as_admin.get(f"/api/v4/audit_events/{event.pk}").json()["details"]["target_id"] == token.pk
    assert as_admin.get(f"/api/v4/audit_events/{event.pk + 1}").status_code == 404
    assert as_admin.get("/api/v4/audit_events/abc").status_code == 404


def test_only_administrators_list_the_instance_events(alice):
    assert client_with(make_token(alice)).get("/api/v4/audit_events").status_code == 403
    assert APIClient().get("/api/v4/audit_events").status_code == 401


def test_the_record_function_takes_an_explicit_entity_and_target():
    event = audit.record(
        "custom_thing_happened",
        entity=audit.INSTANCE,
        target=audit.Target("Thing", 7, "the \x00 thing"),
        message="done",
        ip_address="192.0.2.1",
    )

    assert (event.entity_type, event.entity_id, event.entity_path) == (
        "Gitlab::Audit::InstanceScope",
        1,
        "gitlab_instance",
    )
    assert event.target_details == "the \ufffd thing" and event.ip_address == "192.0.2.1"
