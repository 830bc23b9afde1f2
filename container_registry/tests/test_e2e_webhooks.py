"""Registry webhooks end to end: skopeo pushes through the real registry, the push
notification reaches us, and the hook's receiver (a real HTTP server) gets the event
with the hook's token; a tag deleted through the API is posted too, once."""

from __future__ import annotations

import pytest

from container_registry.models import ContainerRepository
from gitlab_core.celery import app
from gitlab_core.models import ApplicationSettings
from projects.models import WebHook
from tests_support.factories import make_token
from tests_support.hook_receiver import hook_receiver
from tests_support.registry import build_image, skopeo, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SVC = "acme/platform/svc"


@pytest.fixture
def eager_tasks():
    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


def test_push_and_tag_deletion_reach_the_hook(registry, world, tmp_path, client, eager_tasks):
    row = ApplicationSettings.current()
    row.allow_local_requests_from_web_hooks_and_services = True
    row.save()
    users = world["users"]
    maintainer = make_token(users["maintainer"])
    image = build_image(tmp_path / "oci", size=2048, seed="hooks")
    with hook_receiver() as receiver:
        WebHook.objects.create(group=world["acme"], url=receiver.url, token="hook-secret")
        skopeo("copy", image, registry.ref(f"{SVC}/app", "v1"), creds=f"maintainer:{maintainer}")

        wait_until(lambda: receiver.requests, message="the push reached the hook")
        push = receiver.requests[0]
        assert push.headers["x-gitlab-token"] == "hook-secret"
        assert push.headers["x-gitlab-event"] == "Container Registry Hook"
        payload = push.json()
        assert (payload["action"], payload["repository"]["path"], payload["tag"]) == ("push", f"{SVC}/app", "v1")
        assert payload["digest"].startswith("sha256:")
        assert payload["actor"] == {"type": "registry", "name": "maintainer"}
        assert push.headers["idempotency-key"]

        repository = ContainerRepository.objects.get(project=world["project"], name="app")
        url = f"/api/v4/projects/{world['project'].pk}/registry/repositories/{repository.pk}/tags/v1"
        assert client.delete(url, HTTP_PRIVATE_TOKEN=maintainer).status_code == 200
        wait_until(lambda: len(receiver.requests) >= 2, message="the deletion reached the hook")
        deletion = receiver.requests[1].json()
        assert (deletion["action"], deletion["tag"], deletion["actor"]["username"]) == ("delete", "v1", "maintainer")
        # Our own dummy push and manifest deletion are not reported a second time: the
        # registry sends its notifications in order, so once the next push has come,
        # they have been received.
        skopeo("copy", image, registry.ref(f"{SVC}/app", "v2"), creds=f"maintainer:{maintainer}")
        wait_until(lambda: len(receiver.requests) >= 3, message="the second push reached the hook")
        assert [(r.json()["action"], r.json()["tag"]) for r in receiver.requests] == [
            ("push", "v1"),
            ("delete", "v1"),
            ("push", "v2"),
        ]
