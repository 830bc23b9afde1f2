"""``/-/metrics``: the counts of every web process added up (a real granian with two
processes, ``scripts/web.sh``), who may read them, and what the services count."""

from __future__ import annotations

import base64
import json
import secrets
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

from container_registry.models import ContainerRepository
from container_registry.tests.conftest import envelope_with
from gitlab_core.metrics_files import clear_stale_files
from tests_support.factories import make_group, make_project, make_token, make_user
from tests_support.registry import free_port, wait_until
from tests_support.web_server import granian

pytestmark = pytest.mark.django_db(transaction=True)

EVENTS_PATH = "/api/v4/container_registry_event/events"
EVENT_TYPE = "application/vnd.docker.distribution.events.v1+json"


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """``{(sample name, sorted labels): value}`` of a Prometheus text exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


def realm_counts_by_process(directory: Path) -> dict[int, float]:
    """Realm requests each process wrote to its own file."""
    counts: dict[int, float] = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.rpartition("_")[2])
        for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(str(path)):
            if json.loads(key)[0] == "jwt_auth_requests":
                counts[pid] = counts.get(pid, 0) + value
    return counts


@pytest.fixture
def served(settings, registry_keys):
    """The registry settings the server inherits, and a project with an image."""
    settings.REGISTRY_KEY_PATH = str(registry_keys.key_path)
    settings.REGISTRY_CERT_PATH = str(registry_keys.cert_path)
    settings.REGISTRY_NOTIFICATION_SECRET = secrets.token_urlsafe(16)
    # Nothing listens there: the realm and the receiver do not call the registry.
    settings.REGISTRY_API_URL = f"http://127.0.0.1:{free_port()}"
    owner = make_user("metrics-owner")
    project = make_project(make_group("acme", owner=owner), "svc", creator=owner)
    ContainerRepository.objects.create(project=project, name="img")
    return {"token": make_token(owner)}


def _basic(login: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{secret}".encode()).decode()


def test_a_scrape_adds_up_the_realm_and_receiver_counts_of_both_web_processes(served, settings, tmp_path):
    secret = settings.REGISTRY_NOTIFICATION_SECRET
    granted = {"Authorization": _basic("metrics-owner", served["token"])}
    refused = {"Authorization": _basic("metrics-owner", "wrong")}
    query = {"service": "container_registry", "scope": "repository:acme/svc/img:pull,push"}
    sent: Counter = Counter()
    event_number = 0

    def realm(headers) -> int:
        # A fresh connection each time, so that both processes take some.
        return requests.get(f"{web.base}/jwt/auth", params=query, headers=headers, timeout=10).status_code

    def event(number: int, authorization: str) -> int:
        body = envelope_with("push-manifest-oci.json", id=f"metrics-{number}", repository="acme/svc/img", tag="v1")
        headers = {"Content-Type": EVENT_TYPE, "Authorization": authorization}
        return requests.post(f"{web.base}{EVENTS_PATH}", data=body, headers=headers, timeout=10).status_code

    with granian(tmp_path, {"WEB_CONCURRENCY": "2", "WEB_THREADS": "2"}) as web, ThreadPoolExecutor(8) as pool:
        for _round in range(10):
            statuses = list(pool.map(realm, [granted] * 16 + [refused] * 2))
            assert statuses == [200] * 16 + [401] * 2
            sent["granted"] += 16
            sent["unauthorized"] += 2
            numbers = list(range(event_number, event_number + 6))
            event_number += 6
            assert list(pool.map(lambda n: event(n, secret), numbers)) == [200] * 6
            # The registry re-sends an event it got no answer for; a stranger is refused.
            assert event(numbers[0], secret) == 200 and event(numbers[1], "nope") == 401
            sent["applied"] += 6
            sent["duplicate"] += 1
            sent["rejected"] += 1
            if len([pid for pid, count in realm_counts_by_process(tmp_path / "metrics").items() if count]) >= 2:
                break
        per_process = realm_counts_by_process(tmp_path / "metrics")
        scraped = requests.get(f"{web.base}/-/metrics", timeout=10)

    assert len([count for count in per_process.values() if count]) == 2, per_process
    assert scraped.status_code == 200
    assert scraped.headers["Content-Type"].startswith("text/plain; version=")
    found = samples(scraped.text)
    for result in ("granted", "unauthorized"):
        assert found["jwt_auth_requests_total", (("result", result),)] == sent[result]
    assert found["jwt_auth_requests_total", (("result", "banned"),)] == 0
    assert found["jwt_auth_request_duration_seconds_count", ()] == sent["granted"] + sent["unauthorized"]
    for result in ("applied", "duplicate"):
        assert found["registry_events_total", (("action", "push"), ("result", result))] == sent[result]
    assert found["registry_events_total", (("action", "unknown"), ("result", "rejected"))] == sent["rejected"]
    assert found["container_repositories", (("status", "active"),)] == 1
    assert found["container_repositories", (("status", "delete_scheduled"),)] == 0


def test_only_monitoring_addresses_may_scrape_by_their_real_address(served, tmp_path):
    forwarded = {"X-Forwarded-For": "10.1.2.3"}
    allowed = {"MONITORING_ALLOWED_IPS": "10.0.0.0/8"}
    with granian(tmp_path, allowed) as web:
        direct = requests.get(f"{web.base}/-/metrics", timeout=10)
        # Anyone can write X-Forwarded-For: it counts only behind a trusted proxy.
        spoofed = requests.get(f"{web.base}/-/metrics", headers=forwarded, timeout=10)
    with granian(tmp_path, {**allowed, "TRUSTED_PROXIES": "127.0.0.1"}) as web:
        proxied = requests.get(f"{web.base}/-/metrics", headers=forwarded, timeout=10)
        outsider = requests.get(f"{web.base}/-/metrics", headers={"X-Forwarded-For": "203.0.113.5"}, timeout=10)
        # Probes by address: the Host header is not checked (ALLOWED_HOSTS=127.0.0.1).
        by_address = requests.get(f"{web.base}/-/metrics", headers={**forwarded, "Host": "10.9.9.9"}, timeout=10)

    assert (direct.status_code, direct.json()) == (403, {"message": "403 Forbidden"})
    assert spoofed.status_code == 403
    assert proxied.status_code == 200 and "jwt_auth_requests_total" in proxied.text
    assert outsider.status_code == 403
    assert by_address.status_code == 200


def test_the_default_allows_the_loopback_only(client):
    assert client.get("/-/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/-/metrics", REMOTE_ADDR="::1").status_code == 200
    assert client.get("/-/metrics", REMOTE_ADDR="192.0.2.1").status_code == 403


def test_a_start_removes_the_files_of_processes_that_are_gone_only(tmp_path):
    import os

    gone, running = tmp_path / "counter_999999999.db", tmp_path / f"counter_{os.getpid()}.db"
    gone.write_bytes(b"x")
    running.write_bytes(b"x")
    assert clear_stale_files(tmp_path) == 1
    assert not gone.exists() and running.exists()


# --- what the services and the workers count (in this process) ------------------------------


def _scrape() -> dict[tuple[str, tuple], float]:
    from gitlab_core import metrics

    return samples(metrics.exposition()[1].decode())


def _delta(before: dict, after: dict, name: str, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0) - before.get(key, 0)


def test_cleanups_deletions_and_registry_calls_count_their_outcomes(served, settings):
    from container_registry import deletion
    from container_registry.cleanup import cleanup_tags
    from container_registry.cleanup_rules import CleanupRules
    from container_registry.services import schedule_repository_deletion

    repository = ContainerRepository.objects.get(name="img")
    before = _scrape()
    # The registry refuses connections (served: nothing listens at REGISTRY_API_URL).
    result = cleanup_tags(repository=repository, rules=CleanupRules(name_regex_delete=".*"), policy_run=False)
    schedule_repository_deletion(repository=repository)
    outcome = deletion.delete_repository(repository_id=repository.pk)
    again = deletion.delete_repository(repository_id=repository.pk)  # not due: waits its backoff
    after = _scrape()

    assert (result.stop_reason, outcome.result, again.result) == ("registry_error", "rescheduled", "skipped")
    assert _delta(before, after, "cleanup_runs_total", result="registry_error") == 1
    assert _delta(before, after, "cleanup_tags_deleted_total") == 0
    assert _delta(before, after, "repository_deletions_total", result="rescheduled") == 1
    assert _delta(before, after, "repository_deletions_total", result="skipped") == 1
    assert _delta(before, after, "registry_client_requests_total", method="GET", result="connection_error") == 2
    assert _delta(before, after, "registry_client_request_duration_seconds_count", method="GET") == 2
    assert after["container_repositories", (("status", "delete_scheduled"),)] == 1
    assert after["container_repositories", (("status", "active"),)] == 0


def test_task_outcomes_are_counted_from_celerys_signals(served):
    from workers.deletion import delete_repository
    from workers.events import prune_registry_events

    before = _scrape()
    prune = prune_registry_events.apply()
    # A task that raises (an id that is not one) fails, as it does in a worker.
    broken = delete_repository.apply(args=["not-an-id"], throw=False)
    after = _scrape()

    assert (prune.state, broken.state) == ("SUCCESS", "FAILURE")
    task = "container_registry.prune_registry_events"
    assert _delta(before, after, "celery_tasks_total", task=task, result="succeeded") == 1
    assert _delta(before, after, "celery_task_duration_seconds_count", task=task) == 1
    failed = _delta(before, after, "celery_tasks_total", task="container_registry.delete_repository", result="failed")
    assert failed == 1


@pytest.mark.celery_live
def test_a_real_worker_writes_its_task_outcomes_where_the_web_server_reads_them(served, tmp_path):
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    from tests_support.celery_live import live_celery
    from workers.events import prune_registry_events

    directory = tmp_path / "shared-metrics"
    directory.mkdir()
    task = (("result", "succeeded"), ("task", "container_registry.prune_registry_events"))
    # The counts of a worker process of an earlier run, which no longer exists.
    stale = directory / "counter_999999999.db"
    earlier = MmapedDict(str(stale))
    key = mmap_key("celery_tasks", "celery_tasks_total", ["task", "result"], [dict(task)["task"], "succeeded"], "")
    earlier.write_value(key, 5, 0)
    earlier.close()

    def counted() -> float:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(directory))
        return samples(generate_latest(registry).decode()).get(("celery_tasks_total", task), 0)

    with live_celery(env={"PROMETHEUS_MULTIPROC_DIR": str(directory)}) as celery:
        prune_registry_events.delay()
        wait_until(lambda: counted() == 1, timeout=60, message=f"the task counted\n{celery.log()}")
        assert not stale.exists()  # the worker cleared it at start


def test_realm_results_tell_a_full_grant_from_a_partial_one_and_a_ban(served, client, settings):
    settings.AUTH_BAN_MAX_RETRY = 1
    own = {"service": "container_registry", "scope": "repository:acme/svc/img:pull,push"}
    other = {"service": "container_registry", "scope": "repository:acme/nothing/img:pull"}
    token = served["token"]
    before = _scrape()
    statuses = [
        client.get("/jwt/auth", own, HTTP_AUTHORIZATION=_basic("metrics-owner", token)).status_code,
        # A token without the action asked for: 200, as GitLab answers, but denied.
        client.get("/jwt/auth", other, HTTP_AUTHORIZATION=_basic("metrics-owner", token)).status_code,
        client.get("/jwt/auth", own, HTTP_AUTHORIZATION=_basic("metrics-owner", "wrong")).status_code,
        client.get("/jwt/auth", own, HTTP_AUTHORIZATION=_basic("metrics-owner", "wrong")).status_code,
    ]
    after = _scrape()

    assert statuses == [200, 200, 401, 403]
    counts = {r: _delta(before, after, "jwt_auth_requests_total", result=r) for r in ("granted", "denied")}
    assert counts == {"granted": 1, "denied": 1}
    assert _delta(before, after, "jwt_auth_requests_total", result="unauthorized") == 1
    assert _delta(before, after, "jwt_auth_requests_total", result="banned") == 1


def test_repositories_held_by_the_cleanup_brake_are_a_gauge(served):
    from container_registry.models import ContainerRepository as Repository

    Status = Repository.CleanupStatus
    assert _scrape()["container_repositories_cleanup_held", ()] == 0
    Repository.objects.filter(name="img").update(expiration_policy_cleanup_status=Status.HELD)
    assert _scrape()["container_repositories_cleanup_held", ()] == 1
