"""Bad input never gets a 5xx, and always gets an error in the API's shape.

Property-based (hypothesis): every documented ``/api/v4`` route, the token realm and the
event receiver are sent NUL bytes and other control characters, invalid UTF-8 (in the
path, the query string, headers and JSON bodies), huge strings and numbers, ids beyond
64 bits, Unicode digits, wrong JSON types and odd credentials. Requests go through
``gitlab_core.wsgi.application``, the application production servers run (so the realm
and the receiver take their bare WSGI doors), as raw WSGI environs: a WSGI server hands
undecodable bytes to the application as latin-1 characters, and so do these tests.

Asserted for each answer: the status is below 500; an ``/api/v4`` answer is JSON
(never an HTML page), and an error is ``{"message": ...}`` or ``{"error": ...}``; a realm
error is ``{"errors": [{"code", "message"}]}``.

Examples are derandomized (the same inputs on every run, so CI does not flip); set
``HYPOTHESIS_PROFILE=explore`` to search with fresh random inputs and more examples.
"""

from __future__ import annotations

import base64
import json
import os
import time
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from container_registry.models import ContainerRepository, RegistryEvent
from projects.models import CiJob
from tests_support.factories import make_token, make_user
from tests_support.wsgi import call_wsgi

settings.register_profile(
    "ci",
    max_examples=40,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "explore",
    max_examples=500,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SECRET = "registry-notification-secret"
EVENTS = "/api/v4/container_registry_event/events"

# --- input classes ---------------------------------------------------------------------

# What a WSGI server may put in PATH_INFO, QUERY_STRING or a header: any byte, as a
# latin-1 character (so invalid UTF-8 arrives as it was sent).
raw_bytes_text = st.binary(max_size=40).map(lambda b: b.decode("latin-1"))
controls = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=31), min_size=1, max_size=5)
odd_text = st.one_of(
    st.text(max_size=30),
    controls,
    st.sampled_from(["a\x00b", "\x00", "²", "١٢٣", "𝟙𝟚", "٣", "\ud800", "a" * 5000, "../..", "a/b", "x y", "%00", "-"]),
    st.builds(lambda a, c, b: a + c + b, st.text(max_size=5), controls, st.text(max_size=5)),
)
odd_numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**63 - 1, 2**63, 2**64, 10**30, 10**400]),
    st.floats(allow_nan=False, allow_infinity=False),
)
odd_ids = st.one_of(
    st.sampled_from(
        ["0", "-1", "1", "2", "²", "٣", "9" * 19, "9" * 30, "1e3", "0x10", "1.5", " 1", "a%00b", "%ff", "%"]
    ),
    st.integers(min_value=0, max_value=2**80).map(str),
    odd_text.map(lambda t: quote(t.encode("utf-8", "surrogatepass"), safe="")),
    raw_bytes_text,
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), odd_numbers, odd_text),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)

# Every parameter name the API reads, so that odd values reach the code that reads them.
PARAMS = (
    "access_level active admin all_available blocked can_create_group container_registry_access_level "
    "container_registry_enabled description email expires_at external force_random_password keep_n membership "
    "min_access_level name namespace_id note older_than order_by owned parent_id password path projects_limit "
    "query reset_password revoked scopes search simple size skip_confirmation skip_groups sort state tags "
    "tags_count top_level_only user_id user_ids username visibility page per_page name_regex name_regex_delete "
    "name_regex_keep cadence enabled container_expiration_policy_attributes container_registry_token_expire_delay "
    "default_project_visibility default_group_visibility signup_enabled include_subgroups owned_only sudo"
).split()

# Every documented route (see the URL confs), with "{}" where an id goes.
ROUTES = [
    ("GET", "user"),
    ("GET", "users"),
    ("POST", "users"),
    ("GET", "users/{}"),
    ("PUT", "users/{}"),
    ("DELETE", "users/{}"),
    ("GET", "users/{}/personal_access_tokens"),
    ("POST", "users/{}/personal_access_tokens"),
    ("GET", "personal_access_tokens"),
    ("GET", "personal_access_tokens/{}"),
    ("DELETE", "personal_access_tokens/{}"),
    ("POST", "personal_access_tokens/{}/rotate"),
    ("GET", "application/settings"),
    ("PUT", "application/settings"),
    ("GET", "groups"),
    ("POST", "groups"),
    ("GET", "groups/{}"),
    ("GET", "groups/{}/subgroups"),
    ("GET", "projects"),
    ("POST", "projects"),
    ("GET", "projects/{}"),
    ("PUT", "projects/{}"),
    ("DELETE", "projects/{}"),
    ("GET", "projects/{}/deploy_tokens"),
    ("POST", "projects/{}/deploy_tokens"),
    ("GET", "projects/{}/deploy_tokens/{}"),
    ("DELETE", "projects/{}/deploy_tokens/{}"),
    ("GET", "projects/{}/members"),
    ("POST", "projects/{}/members"),
    ("GET", "projects/{}/members/all"),
    ("GET", "projects/{}/members/{}"),
    ("PUT", "projects/{}/members/{}"),
    ("DELETE", "projects/{}/members/{}"),
    ("GET", "groups/{}/members"),
    ("POST", "groups/{}/members"),
    ("GET", "groups/{}/members/all"),
    ("PUT", "groups/{}/members/{}"),
    ("DELETE", "groups/{}/members/{}"),
    ("GET", "projects/{}/registry/repositories"),
    ("DELETE", "projects/{}/registry/repositories/{}"),
    ("GET", "projects/{}/registry/repositories/{}/tags"),
    ("DELETE", "projects/{}/registry/repositories/{}/tags"),
    ("GET", "projects/{}/registry/repositories/{}/tags/{}"),
    ("DELETE", "projects/{}/registry/repositories/{}/tags/{}"),
    ("GET", "projects/{}/registry/repositories/{}/cleanup_plan"),
    ("GET", "projects/{}/registry/cleanup_plan"),
    ("GET", "groups/{}/registry/repositories"),
    ("GET", "registry/repositories/{}"),
    ("GET", "version"),
    ("GET", "metadata"),
    ("GET", "namespaces"),
    ("GET", "namespaces/{}"),
    ("GET", "groups/{}/projects"),
    ("GET", "groups/{}/descendant_groups"),
    ("GET", "groups/{}/deploy_tokens"),
    ("POST", "groups/{}/deploy_tokens"),
    ("GET", "groups/{}/deploy_tokens/{}"),
    ("DELETE", "groups/{}/deploy_tokens/{}"),
    ("GET", "deploy_tokens"),
]
# Ids that name real rows of the fixture, so that odd parameters get past the lookups.
REAL_IDS = ["1", "acme", "acme%2Fplatform", "acme%2Fplatform%2Fsvc"]


# --- the world and the checks ----------------------------------------------------------


@pytest.fixture
def bad_input_world(world, admin, settings):
    settings.REGISTRY_NOTIFICATION_SECRET = SECRET
    # A registry that is never there: calls to it fail fast (see REGISTRY_DOWN).
    settings.REGISTRY_API_URL = "http://127.0.0.1:9"
    settings.REGISTRY_REQUEST_TIMEOUT = 0.5
    repository = ContainerRepository.objects.create(project=world["project"], name="app")
    CiJob.objects.create(project=world["project"], user=world["users"]["developer"], token_digest="0" * 64)
    return {
        **world,
        "repository": repository,
        "admin_token": make_token(admin),
        "owner_token": make_token(world["users"]["owner"]),
        "fresh": make_user("fresh-user"),
    }


def raw_environ_value(text: str) -> str:
    """``text`` as a WSGI server would hand it over: its UTF-8 bytes as latin-1."""
    if all(ord(c) < 256 for c in text):
        return text
    return text.encode("utf-8", "surrogatepass").decode("latin-1")


# The registry is not running in these tests (the fixture points at a closed port): the
# one 5xx allowed is the API saying so, which is not about the input.
REGISTRY_DOWN = (503, b'{"message": "503 Container registry unavailable"}')


def assert_api_answer(response, where: str) -> None:
    if (response.status_code, response.content) == REGISTRY_DOWN:
        return
    assert response.status_code < 500, f"{where}: {response.status_code} {response.content[:300]!r}"
    content_type = response.headers.get("Content-Type", "")
    if response.status_code == 204 or (not response.content and response.status_code < 400):
        return
    assert content_type.startswith("application/json"), f"{where}: {content_type} {response.content[:200]!r}"
    if response.status_code >= 400:
        body = json.loads(response.content)
        assert isinstance(body, dict) and ("message" in body or "error" in body), f"{where}: {body!r}"


def assert_realm_answer(response, where: str) -> None:
    assert response.status_code < 500, f"{where}: {response.status_code} {response.content[:300]!r}"
    if response.status_code >= 400 and response.content and response.headers["Content-Type"] == "application/json":
        body = json.loads(response.content)
        assert [set(e) for e in body["errors"]] == [{"code", "message"}], f"{where}: {body!r}"


def api_call(method: str, path: str, *, query: str = "", body: bytes = b"", headers: dict | None = None):
    environ = {"QUERY_STRING": raw_environ_value(query)}
    if body:
        environ["CONTENT_TYPE"] = "application/json"
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = raw_environ_value(value)
    return call_wsgi(method, raw_environ_value(path), body, **environ)


# --- the properties --------------------------------------------------------------------


@pytest.mark.django_db
@given(
    route=st.sampled_from(ROUTES),
    ids=st.lists(st.one_of(odd_ids, st.sampled_from(REAL_IDS)), min_size=3, max_size=3),
    who=st.sampled_from(["admin_token", "owner_token", None]),
)
def test_odd_path_ids_never_get_a_5xx(bad_input_world, route, ids, who):
    method, template = route
    path = "/api/v4/" + template.format(*ids[: template.count("{}")])
    headers = {"PRIVATE-TOKEN": bad_input_world[who]} if who else {}
    assert_api_answer(api_call(method, path, headers=headers), f"{method} {path!r}")


@pytest.mark.django_db
@given(
    route=st.sampled_from(ROUTES),
    params=st.dictionaries(st.sampled_from(PARAMS + ["x[]", "skip_groups[]", "private_token"]), odd_text, max_size=4),
    raw_tail=raw_bytes_text,
)
def test_odd_query_parameters_never_get_a_5xx(bad_input_world, route, params, raw_tail):
    method, template = route
    path = "/api/v4/" + template.format(*REAL_IDS[1:][: template.count("{}")])
    parts = [f"{quote(k)}={quote(v.encode('utf-8', 'surrogatepass'), safe='')}" for k, v in params.items()]
    query = "&".join([*parts, raw_tail])
    headers = {"PRIVATE-TOKEN": bad_input_world["admin_token"]}
    assert_api_answer(api_call(method, path, query=query, headers=headers), f"{method} {path}?{query!r}")


@pytest.mark.django_db
@given(
    route=st.sampled_from([r for r in ROUTES if r[0] in ("POST", "PUT", "DELETE")]),
    body=st.one_of(
        st.dictionaries(st.sampled_from(PARAMS), json_values, max_size=5),
        json_values,
        st.binary(max_size=40),
    ),
)
def test_odd_json_bodies_never_get_a_5xx(bad_input_world, route, body):
    method, template = route
    path = "/api/v4/" + template.format(*REAL_IDS[1:][: template.count("{}")])
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"PRIVATE-TOKEN": bad_input_world["admin_token"]}
    assert_api_answer(api_call(method, path, body=raw, headers=headers), f"{method} {path} {raw[:200]!r}")


@pytest.mark.django_db
@given(
    route=st.sampled_from(ROUTES),
    token=st.one_of(odd_text, raw_bytes_text),
    scheme=st.sampled_from(["PRIVATE-TOKEN", "Bearer", "Basic", "JOB-TOKEN"]),
)
def test_odd_credentials_on_the_api_never_get_a_5xx(bad_input_world, route, token, scheme):
    method, template = route
    path = "/api/v4/" + template.format(*REAL_IDS[1:][: template.count("{}")])
    if scheme in ("PRIVATE-TOKEN", "JOB-TOKEN"):
        headers = {scheme: token}
    elif scheme == "Basic":
        raw = token.encode("utf-8", "surrogatepass")
        headers = {"Authorization": "Basic " + base64.b64encode(raw + b":" + raw).decode()}
    else:
        headers = {"Authorization": f"Bearer {token}"}
    assert_api_answer(api_call(method, path, headers=headers), f"{method} {path} {headers!r}")


@pytest.mark.django_db
@given(
    login=st.one_of(odd_text, raw_bytes_text, st.just("a\x00b"), st.just("gitlab-ci-token"), st.just("root")),
    password=st.one_of(odd_text, raw_bytes_text, st.just("c")),
    scope=st.one_of(odd_text, raw_bytes_text, st.sampled_from(["repository:acme/platform/svc/app:pull,push"])),
    raw_header=st.one_of(st.none(), raw_bytes_text),
)
def test_odd_realm_requests_never_get_a_5xx(bad_input_world, login, password, scope, raw_header):
    if raw_header is not None:
        authorization = raw_header
    else:
        pair = login.encode("utf-8", "surrogatepass") + b":" + password.encode("utf-8", "surrogatepass")
        authorization = "Basic " + base64.b64encode(pair).decode()
    query = f"service=container_registry&scope={quote(scope.encode('utf-8', 'surrogatepass'), safe=':/,')}"
    response = api_call("GET", "/jwt/auth", query=query, headers={"Authorization": authorization})
    assert_realm_answer(response, f"{authorization!r} {query!r}")


def _event(repository, tag, event_id, action, extra):
    target = {"repository": repository, "tag": tag, "mediaType": extra, "digest": extra}
    return {"id": event_id, "action": action, "target": target, "request": {"method": extra}, "timestamp": extra}


@pytest.mark.django_db
@given(
    repository=st.one_of(odd_text, st.sampled_from(["acme/platform/svc/app", "acme/platform/svc"])),
    tag=st.one_of(st.none(), odd_text, json_values),
    event_id=st.one_of(odd_text, json_values),
    action=st.one_of(st.sampled_from(["push", "pull", "delete", "mount"]), json_values),
    extra=json_values,
    raw=st.one_of(st.none(), st.binary(max_size=60)),
)
def test_odd_registry_events_never_get_a_5xx(bad_input_world, repository, tag, event_id, action, extra, raw):
    if raw is None:
        raw = json.dumps({"events": [_event(repository, tag, event_id, action, extra)]}).encode()
    response = api_call(
        "POST",
        EVENTS,
        body=raw,
        headers={"Authorization": SECRET},
    )
    assert_api_answer(response, f"event {raw[:300]!r}")


# --- the findings, one example each --------------------------------------------------------


def _basic(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


@pytest.mark.django_db
@pytest.mark.parametrize("pair", [("a\x00b", "c"), ("root", "pass\x00word"), ("\x00", "\x00")])
def test_a_nul_in_basic_credentials_is_a_401_not_a_500(bad_input_world, pair):
    query = "service=container_registry&scope=repository:acme/platform/svc/app:pull"
    response = api_call("GET", "/jwt/auth", query=query, headers={"Authorization": _basic(*pair)})
    assert response.status_code == 401
    assert [set(e) for e in response.json()["errors"]] == [{"code", "message"}]


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["id", "tag", "digest", "mediaType", "method"])
def test_a_nul_in_an_event_field_is_a_400_and_changes_nothing(bad_input_world, field):
    event = _event("acme/platform/svc/app", "v1", "event-1", "push", "application/json")
    event["target"]["digest"] = "sha256:" + "0" * 64
    where = event["request"] if field == "method" else event if field == "id" else event["target"]
    where[field] = "a\x00b"
    body = json.dumps({"events": [event]}).encode()
    response = api_call("POST", EVENTS, body=body, headers={"Authorization": SECRET})
    assert response.status_code == 400
    assert "message" in response.json()
    assert bad_input_world["repository"].__class__.objects.count() == 1


# --- linear-time matching ----------------------------------------------------------------
# A long run of letters then one character the grammar refuses: a backtracking matcher of
# the repository grammar (whose separators may be empty) tries every way to split the run,
# doubling its work with each letter (26 letters took seconds).
ADVERSARIAL_NAME = "a" * 4999 + "!"
RECEIVER_MAX_NAME = 2048  # longer names are skipped before any pattern runs


def test_the_repository_grammar_refuses_the_adversarial_name_in_linear_time():
    from projects.image_paths import PATH_REGEX, valid_image_path

    started = time.perf_counter()
    assert PATH_REGEX.fullmatch(ADVERSARIAL_NAME) is None
    assert valid_image_path(ADVERSARIAL_NAME) is False
    assert time.perf_counter() - started < 0.1


@pytest.mark.django_db
@pytest.mark.parametrize("name", [ADVERSARIAL_NAME, ADVERSARIAL_NAME[-RECEIVER_MAX_NAME:]])
def test_an_adversarial_repository_name_is_answered_fast_by_the_receiver(bad_input_world, name):
    event = _event(name, "v1", "event-1", "push", "application/json")
    body = json.dumps({"events": [event]}).encode()
    started = time.perf_counter()
    response = api_call("POST", EVENTS, body=body, headers={"Authorization": SECRET})
    elapsed = time.perf_counter() - started
    # An event naming no valid repository is skipped: the delivery is acknowledged.
    assert response.status_code == 200
    assert not RegistryEvent.objects.exists()
    assert elapsed < 0.5


@pytest.mark.django_db
def test_an_adversarial_repository_name_is_answered_fast_by_the_realm(bad_input_world):
    query = f"service=container_registry&scope=repository:{ADVERSARIAL_NAME}:pull"
    auth = {"Authorization": _basic("owner", "password123")}
    started = time.perf_counter()
    response = api_call("GET", "/jwt/auth", query=query, headers=auth)
    elapsed = time.perf_counter() - started
    # The malformed scope is dropped: a token granting nothing.
    assert response.status_code == 200
    assert elapsed < 0.5


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/api/v4/projects/a\x00b/members/all",
        "/api/v4/groups/acme/\x00/subgroups",
        "/api/v4/projects/" + "/".join(["a"] * 3000) + "/members",
    ],
)
def test_odd_full_paths_in_the_url_are_404_not_500(bad_input_world, path):
    headers = {"PRIVATE-TOKEN": bad_input_world["admin_token"]}
    started = time.perf_counter()
    response = api_call("GET", path, headers=headers)
    assert response.status_code == 404
    assert response.json() in (
        {"error": "404 Not Found"},
        {"message": "404 Project Not Found"},
        {"message": "404 Group Not Found"},
    )
    assert time.perf_counter() - started < 0.5
