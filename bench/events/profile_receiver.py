"""Profile the event receiver in-process: ``manage.py shell < bench/events/profile_receiver.py``.

Seeds a ``bench/app`` project when missing, prints the queries of one event (a tag push
to an existing repository, a fresh event id), the time per event without and with
cProfile, and the top functions. Set ``REGISTRY_NOTIFICATION_SECRET`` in the environment."""

import cProfile
import json
import pstats
import time
import uuid

from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from projects.models import Namespace
from tests_support.factories import make_group, make_project

ENVELOPE = "container_registry/tests/fixtures/registry-2.8/push-manifest-oci.json"
URL = "/api/v4/container_registry_event/events"
ROUNDS = 500

if not Namespace.objects.filter(full_path_lower="bench").exists():
    make_project(make_group("bench"), "app")
template = json.loads(open(ENVELOPE, "rb").read())
template["events"][0]["target"]["repository"] = "bench/app/image"
client = Client(HTTP_AUTHORIZATION=settings.REGISTRY_NOTIFICATION_SECRET)


def post():
    template["events"][0]["id"] = str(uuid.uuid4())
    body = json.dumps(template, indent=3).encode()
    response = client.post(URL, data=body, content_type="application/vnd.docker.distribution.events.v1+json")
    assert response.status_code == 200, response.content


post()  # creates the repository row
with CaptureQueriesContext(connection) as queries:
    post()
print(f"{len(queries)} queries per event:")
for q in queries.captured_queries:
    print("  ", q["sql"][:200])
started = time.perf_counter()
for _ in range(ROUNDS):
    post()
print(f"{(time.perf_counter() - started) / ROUNDS * 1000:.2f} ms per event")
profiler = cProfile.Profile()
started = time.perf_counter()
profiler.enable()
for _ in range(ROUNDS):
    post()
profiler.disable()
print(f"{(time.perf_counter() - started) / ROUNDS * 1000:.2f} ms per event (profiled)")
pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
