"""Profile ``/jwt/auth`` in-process: ``manage.py shell < bench/jwt_auth/profile_realm.py``.

Seeds the benchmark fixtures when missing, then sends a PAT pull+push request through
the production WSGI application (``gitlab_core.wsgi``, as gunicorn does) and prints the
queries of one warm request; the CPU time per request of this process and, when the
database is a local PostgreSQL, of its server process (medians of 5 x 300 requests,
unprofiled); and the top functions by CPU time (cProfile with a CPU clock, so waiting
for PostgreSQL or Redis is not counted; profiling inflates Python-heavy parts).

Settings from the environment apply (``HOT_QUERIES_PREPARED=false``,
``REGISTRY_SETTINGS_CACHE_SECONDS=0`` ...). Run from another source tree (for example
an older commit exported with ``git archive``) to measure that code the same way."""

import base64
import cProfile
import io
import os
import pstats
import statistics
import time

from django.db import connection
from django.test.utils import CaptureQueriesContext

from gitlab_core.models import User
from gitlab_core.wsgi import application
from tests_support.factories import make_token

if not User.objects.filter(username="benchdev").exists():
    exec(open("bench/jwt_auth/seed.py").read())
pat = make_token(User.objects.get(username="benchdev"), scopes=["api"])
QUERY = "service=container_registry&scope=repository:bench/group/app/img:pull,push"
AUTH = "Basic " + base64.b64encode(f"benchdev:{pat}".encode()).decode()


def request() -> None:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/jwt/auth",
        "QUERY_STRING": QUERY,
        "SCRIPT_NAME": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_AUTHORIZATION": AUTH,
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.url_scheme": "http",
    }

    def start_response(status, headers, exc_info=None):
        assert status.startswith("200"), status

    result = application(environ, start_response)
    b"".join(result)
    if hasattr(result, "close"):
        result.close()


for _ in range(50):
    request()
with CaptureQueriesContext(connection) as queries:
    request()
print(f"{len(queries)} queries per warm request:")
for q in queries.captured_queries:
    print("  ", " ".join(q["sql"].split())[:160])
backend_pid = None
if connection.vendor == "postgresql":
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend_pid = cursor.fetchone()[0]


def server_cpu() -> float:
    if backend_pid is None or not os.path.exists(f"/proc/{backend_pid}/stat"):
        return 0.0
    fields = open(f"/proc/{backend_pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


python_us, server_us = [], []
for _ in range(5):
    cpu, server = time.process_time(), server_cpu()
    for _ in range(300):
        request()
    python_us.append((time.process_time() - cpu) / 300 * 1e6)
    server_us.append((server_cpu() - server) / 300 * 1e6)
python, server = statistics.median(python_us), statistics.median(server_us)
print(f"CPU per request: this process {python:.0f} us, PostgreSQL {server:.0f} us, total {python + server:.0f} us")


def part_costs() -> None:
    """CPU of the realm's parts, called directly (this code's API; skipped for trees
    that do not have it)."""
    try:
        from gitlab_core.token_lookup import find_personal_access_token
        from jwt_auth import services, throttle, tokens, views
        from jwt_auth.scopes import realm_query
        from projects.image_paths import resolve_image_paths
    except ImportError:
        return
    from django.test import RequestFactory

    user = User.objects.get(username="benchdev")
    scopes = realm_query(QUERY).scopes
    caller = services.identify_caller(authorization=AUTH, client_ip="127.0.0.1", scopes=scopes)
    access = services.grant_access(auth=caller, scopes=scopes)
    view_request = RequestFactory().get("/jwt/auth?" + QUERY, HTTP_AUTHORIZATION=AUTH)
    parts = {
        "view function": lambda: views.auth(view_request),
        "identify_caller (and the access statement, read with it)": lambda: services.identify_caller(
            authorization=AUTH, client_ip="127.0.0.1", scopes=scopes
        ),
        "  throttle check": lambda: throttle.check(ip="127.0.0.1", login="benchdev"),
        "  token + user query": lambda: find_personal_access_token(pat),
        "grant_access (paths read with the caller)": lambda: services.grant_access(auth=caller, scopes=scopes),
        "  projects + access level query": lambda: resolve_image_paths(["bench/group/app/img"], user=user),
        "mint_registry_token": lambda: tokens.mint_registry_token(
            access=access, subject="benchdev", auth_type=caller.auth_type, user_info=caller.user_info
        ),
    }
    for name, call in parts.items():
        runs = []
        for _ in range(5):
            cpu = time.process_time()
            for _ in range(300):
                call()
            runs.append((time.process_time() - cpu) / 300 * 1e6)
        print(f"  {name:34s} {statistics.median(runs):6.0f} us")


part_costs()
profiler = cProfile.Profile(time.process_time)
profiler.enable()
for _ in range(1000):
    request()
profiler.disable()
pstats.Stats(profiler).sort_stats(os.environ.get("PROFILE_SORT", "cumtime")).print_stats(40)
