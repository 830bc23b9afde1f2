"""Registry webhooks: the hook API through python-gitlab, the local-network rule (at
save and at delivery), deliveries to a real HTTP receiver, retries and disabling."""

from __future__ import annotations

import gitlab
import pytest

from gitlab_core import outbound
from gitlab_core.celery import app
from gitlab_core.models import ApplicationSettings
from projects import webhooks
from projects.models import WebHook, WebHookLog
from tests_support.hook_receiver import hook_receiver

SVC = "acme/platform/svc"


@pytest.fixture
def eager_tasks():
    """Tasks run in the test's thread (the tests use a committing database, so that the
    deliveries enqueued on commit run)."""
    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


def _allow_local(value: bool) -> None:
    row = ApplicationSettings.current()
    row.allow_local_requests_from_web_hooks_and_services = value
    row.save()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:9/x", "Requests to localhost are not allowed"),
        ("http://localhost/x", "Requests to localhost are not allowed"),
        ("http://[::1]/x", "Requests to localhost are not allowed"),
        ("http://10.1.2.3/x", "Requests to the local network are not allowed"),
        ("http://169.254.169.254/latest", "Requests to the local network are not allowed"),
        ("http://[::ffff:192.168.0.1]/", "Requests to the local network are not allowed"),
        ("http://0.0.0.0/", "Requests to the local network are not allowed"),
        ("ftp://example.com/", "Only allowed schemes are http, https"),
        ("http://exa mple.com/", "Only allowed schemes are http, https"),
        ("http://no-such-host.invalid/", "Host cannot be resolved or invalid"),
        ("http://example.com:99999/", "URI is invalid"),
    ],
)
def test_local_and_bad_addresses_are_blocked(url, message):
    with pytest.raises(outbound.BlockedUrl) as excinfo:
        outbound.check_url(url, allow_local=False)
    assert message in str(excinfo.value)


def test_local_addresses_pass_when_allowed():
    assert outbound.check_url("http://127.0.0.1:8080/x?y=1", allow_local=True).request_path == "/x?y=1"


def test_hooks_api_through_python_gitlab(gl_as, world, eager_tasks):
    users = world["users"]
    project = gl_as(users["maintainer"]).projects.get(SVC)
    with hook_receiver() as receiver:
        with pytest.raises(gitlab.GitlabCreateError) as excinfo:
            project.hooks.create({"url": receiver.url, "container_registry_events": True})
        assert excinfo.value.response_code == 422
        assert "Requests to localhost are not allowed" in str(excinfo.value.error_message)

        _allow_local(True)
        hook = project.hooks.create({"url": receiver.url, "container_registry_events": True, "token": "s3cret"})
        assert hook.container_registry_events is True and hook.alert_status == "executable"
        assert "token" not in hook.attributes
        assert [h.id for h in project.hooks.list()] == [hook.id]

        hook.name = "registry"
        hook.save()
        assert project.hooks.get(hook.id).name == "registry"

        hook.test("container_registry_events")
        delivered = receiver.requests[-1]
        assert delivered.headers["x-gitlab-token"] == "s3cret"
        assert delivered.headers["x-gitlab-event"] == "Container Registry Hook"
        assert delivered.json()["object_kind"] == "container_registry"
        assert delivered.json()["project"]["path_with_namespace"] == SVC

        with pytest.raises(gitlab.GitlabListError) as excinfo:
            gl_as(users["developer"]).projects.get(SVC, lazy=True).hooks.list()
        assert excinfo.value.response_code == 403

        group = gl_as(users["owner"]).groups.get("acme")
        group_hook = group.hooks.create({"url": receiver.url, "container_registry_events": True})
        assert [h.id for h in group.hooks.list()] == [group_hook.id]
        with pytest.raises(gitlab.GitlabListError):
            gl_as(users["maintainer"]).groups.get("acme/platform", lazy=True).hooks.list()

        project.hooks.delete(hook.id)
        assert list(WebHook.objects.values_list("id", flat=True)) == [group_hook.id]


@pytest.mark.django_db(transaction=True)
def test_a_failing_receiver_gets_retries_and_the_hook_rests(world, eager_tasks, settings):
    settings.WEBHOOK_RETRY_DELAYS = [0.01, 0.01, 0.01]
    _allow_local(True)
    project = world["project"]
    with hook_receiver(status=500) as receiver:
        hook = WebHook.objects.create(project=project, url=receiver.url)
        change = webhooks.RegistryChange("push", f"{SVC}/app", tag="v1", digest="sha256:" + "1" * 64, key="event-1")
        assert webhooks.request_deliveries(project.pk, [change]) == 1
        # The first attempt and three retries, all with the same key; then the hook rests.
        assert len(receiver.requests) == 4
        assert {r.headers["idempotency-key"] for r in receiver.requests} == {"event-1"}
        hook.refresh_from_db()
        assert webhooks.alert_status(hook) == "temporarily_disabled"
        assert list(WebHookLog.objects.filter(hook=hook).values_list("response_status", flat=True)) == ["500"] * 4

        webhooks.request_deliveries(project.pk, [change])
        assert len(receiver.requests) == 4  # skipped while resting

        # A successful test delivery brings it back.
        receiver.status = 200
        assert webhooks.test_delivery(hook, user=world["users"]["owner"]).outcome == "delivered"
        hook.refresh_from_db()
        assert webhooks.alert_status(hook) == "executable" and hook.recent_failures == 0


@pytest.mark.django_db
def test_hooks_are_disabled_for_good_after_forty_failures(world):
    hook = WebHook.objects.create(project=world["project"], url="http://example.com/", recent_failures=40)
    webhooks._after_failure(hook, hook.created_at)
    assert webhooks.alert_status(hook) == "disabled" and hook.disabled_until is None


@pytest.mark.django_db(transaction=True)
def test_delivery_checks_the_address_again(world, eager_tasks):
    _allow_local(True)
    with hook_receiver() as receiver:
        hook = WebHook.objects.create(project=world["project"], url=receiver.url)
        _allow_local(False)
        webhooks.request_deliveries(world["project"].pk, [webhooks.RegistryChange("repository_delete", SVC)])
        assert receiver.requests == []
        logs = WebHookLog.objects.filter(hook=hook)
        assert logs.exists()
        assert {(log.response_status, log.response_body) for log in logs} == {
            ("internal error", "URL is blocked: Requests to localhost are not allowed")
        }


@pytest.mark.django_db(transaction=True)
def test_group_hooks_hear_of_projects_below(world, eager_tasks):
    _allow_local(True)
    with hook_receiver() as receiver:
        WebHook.objects.create(group=world["acme"], url=receiver.url)
        WebHook.objects.create(group=world["platform"], url=receiver.url, container_registry_events=False)
        webhooks.request_deliveries(
            world["project"].pk, [webhooks.RegistryChange("delete", f"{SVC}/app", tag="old", actor=None)]
        )
        assert len(receiver.requests) == 1
        payload = receiver.requests[0].json()
        assert (payload["action"], payload["tag"], payload["actor"]["type"]) == ("delete", "old", "system")


@pytest.mark.django_db
def test_admin_manages_hooks_and_shows_deliveries(client, world, admin):
    client.force_login(admin)
    add = "/admin/projects/webhook/add/"
    fields = {
        "project": world["project"].pk,
        "url": "http://127.0.0.1:9/hook",
        "container_registry_events": "on",
        "logs-TOTAL_FORMS": "0",
        "logs-INITIAL_FORMS": "0",
    }
    refused = client.post(add, fields)
    assert refused.status_code == 200 and b"Requests to localhost are not allowed" in refused.content
    _allow_local(True)
    assert client.post(add, {**fields, "token": "tok-secret"}).status_code == 302
    hook = WebHook.objects.get()
    assert hook.token == "tok-secret"
    WebHookLog.objects.create(hook=hook, trigger=webhooks.TRIGGER, idempotency_key="k", response_status="502")
    page = client.get(f"/admin/projects/webhook/{hook.pk}/change/")
    assert page.status_code == 200 and b"502" in page.content and b"tok-secret" not in page.content
    # Saving without a token keeps it.
    assert client.post(f"/admin/projects/webhook/{hook.pk}/change/", fields).status_code == 302
    hook.refresh_from_db()
    assert hook.token == "tok-secret"
    assert client.get("/admin/projects/webhooklog/").status_code == 200


def test_six_to_four_and_teredo_addresses_of_the_inside_are_blocked():
    for url in ("http://[2002:7f00:1::]/", "http://[2002:c0a8:101::]/"):
        with pytest.raises(outbound.BlockedUrl):
            outbound.check_url(url, allow_local=False)


def test_a_trickling_receiver_cannot_hold_a_delivery_past_its_timeout():
    import socket
    import threading
    import time

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    stop = threading.Event()

    def trickle():
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        while not stop.is_set():
            try:
                conn.sendall(b"X-A: b\r\n")
            except OSError:
                break
            time.sleep(0.2)
        conn.close()

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        with pytest.raises((OSError, outbound.http.client.HTTPException)):
            outbound.post(f"http://127.0.0.1:{server.getsockname()[1]}/", b"{}", {}, allow_local=True, timeout=1.0)
        assert time.monotonic() - started < 3
    finally:
        stop.set()
        server.close()


@pytest.mark.django_db(transaction=True)
def test_tokens_that_cannot_travel_in_a_header_are_refused(client, world, api_token):
    _allow_local(True)
    token = {"HTTP_PRIVATE_TOKEN": api_token(world["users"]["maintainer"])}
    url = f"/api/v4/projects/{world['project'].pk}/hooks"
    for bad in ("a\rb", "tok\u20ac"):
        response = client.post(
            url, {"url": "http://127.0.0.1:9/", "token": bad}, content_type="application/json", **token
        )
        assert response.status_code in (400, 422), response.content
    assert not WebHook.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_broker_that_is_down_loses_the_delivery_not_the_change(world, monkeypatch, caplog):
    # A broker outage cannot be produced in-process (the app's broker is fixed at start):
    # the enqueue call is made to fail as kombu fails, which is the fault under test.
    from kombu.exceptions import OperationalError

    from workers import webhooks as webhook_tasks

    def refuse(*args, **kwargs):
        raise OperationalError("Error 111 connecting to redis")

    monkeypatch.setattr(webhook_tasks.deliver_webhook, "apply_async", refuse)
    WebHook.objects.create(project=world["project"], url="http://example.com/hook")
    assert webhooks.request_deliveries(world["project"].pk, [webhooks.RegistryChange("repository_delete", SVC)]) == 1
    assert "webhook delivery not enqueued, broker unavailable" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_the_test_endpoint_is_rate_limited(client, world, api_token):
    _allow_local(True)
    token = {"HTTP_PRIVATE_TOKEN": api_token(world["users"]["maintainer"])}
    with hook_receiver() as receiver:
        hook = WebHook.objects.create(project=world["project"], url=receiver.url)
        url = f"/api/v4/projects/{world['project'].pk}/hooks/{hook.pk}/test/container_registry_events"
        assert client.post(url, **token).status_code == 201
        assert client.post(url, **token).status_code == 429
        assert len(receiver.requests) == 1
