"""Profile ``/jwt/auth`` in-process: ``manage.py shell < bench/jwt_auth/profile_realm.py``.

Seeds the benchmark fixtures when missing, then runs a PAT pull+push request 300 times
under cProfile and prints the query count of one request and the top functions."""

import base64
import cProfile
import pstats
import time

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from gitlab_core.models import User
from tests_support.factories import make_token

if not User.objects.filter(username="benchdev").exists():
    exec(open("bench/jwt_auth/seed.py").read())
pat = make_token(User.objects.get(username="benchdev"), scopes=["api"])
client = Client(HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"benchdev:{pat}".encode()).decode())
url = "/jwt/auth?service=container_registry&scope=repository:bench/group/app/img:pull,push"
assert client.get(url).status_code == 200
with CaptureQueriesContext(connection) as queries:
    client.get(url)
print(f"{len(queries)} queries per request:")
for q in queries.captured_queries:
    print("  ", q["sql"][:150])
profiler = cProfile.Profile()
started = time.perf_counter()
profiler.enable()
for _ in range(300):
    client.get(url)
profiler.disable()
print(f"{(time.perf_counter() - started) / 300 * 1000:.2f} ms per request (profiled)")
pstats.Stats(profiler).sort_stats("cumtime").print_stats(45)
