"""The realm's CPU per request with and without its metrics, in one process:
``manage.py shell < bench/metrics/realm_with_and_without.py``.

Seeds the benchmark fixtures when missing (``bench/jwt_auth/seed.py``), then sends the
same PAT pull+push request through the production WSGI application in alternating
batches of 500, once through ``jwt_auth.views.answer`` (which records) and once through
the decision alone; prints the median CPU microseconds per request of each. Alternating
in one process cancels the drift of a shared machine that separate server runs suffer.
"""

import base64
import statistics
import time

from gitlab_core.models import User
from gitlab_core.wsgi import application
from jwt_auth import views
from tests_support.factories import make_token

if not User.objects.filter(username="benchdev").exists():
    exec(open("bench/jwt_auth/seed.py").read())
pat = make_token(User.objects.get(username="benchdev"), scopes=["api"])
AUTH = "Basic " + base64.b64encode(f"benchdev:{pat}".encode()).decode()
QUERY = "service=container_registry&scope=repository:bench/group/app/img:pull,push"


def request() -> None:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/jwt/auth",
        "QUERY_STRING": QUERY,
        "HTTP_AUTHORIZATION": AUTH,
        "REMOTE_ADDR": "127.0.0.1",
    }
    b"".join(application(environ, lambda status, headers: None))


def unrecorded(method, query, authorization, client_ip):
    return views._decide(method, query, authorization, client_ip)[0]


recorded = views.answer
for _ in range(200):
    request()
results = {"with metrics": [], "without": []}
try:
    for _ in range(7):
        for name, answer in (("with metrics", recorded), ("without", unrecorded)):
            views.answer = answer
            started = time.process_time()
            for _ in range(500):
                request()
            results[name].append((time.process_time() - started) / 500 * 1e6)
finally:
    views.answer = recorded
for name, values in results.items():
    print(f"{name}: median {statistics.median(values):.1f} us CPU per request ({min(values):.0f}-{max(values):.0f})")
