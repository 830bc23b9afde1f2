"""The failed-authentication ban, per (client IP, login)."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings

from jwt_auth.throttle import BANNED_MESSAGE

pytestmark = pytest.mark.django_db

SCOPE = "repository:acme/platform/svc:pull"


@pytest.fixture(autouse=True)
def small_limits(settings):
    settings.AUTH_BAN_ENABLED = True
    settings.AUTH_BAN_MAX_RETRY = 3
    settings.AUTH_BAN_FIND_TIME = 180
    settings.AUTH_BAN_TIME = 3600
    settings.AUTH_BAN_IP_ALLOWLIST = []


def _fail(realm, login, times):
    for _ in range(times):
        assert realm.get(SCOPE, creds=(login, "wrong")).status_code == 401


def test_repeated_failures_ban_the_login_from_that_ip_with_a_plain_403(realm, world, api_token):
    token = api_token(world["users"]["reporter"])
    _fail(realm, "reporter", 3)
    response = realm.get(SCOPE, creds=("reporter", token))
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == BANNED_MESSAGE


def test_other_users_behind_the_same_ip_are_not_locked_out(realm, world, api_token):
    _fail(realm, "reporter", 3)
    token = api_token(world["users"]["developer"])
    assert realm.get(SCOPE, creds=("developer", token)).status_code == 200


def test_other_ips_are_not_banned(realm, world, api_token, client):
    _fail(realm, "reporter", 3)
    token = api_token(world["users"]["reporter"])
    from jwt_auth.tests.conftest import basic

    response = client.get(
        f"/jwt/auth?service=container_registry&scope={SCOPE}",
        HTTP_AUTHORIZATION=basic("reporter", token),
        REMOTE_ADDR="10.1.2.3",
    )
    assert response.status_code == 200


def test_a_success_resets_the_failure_count(realm, world, api_token):
    token = api_token(world["users"]["reporter"])
    _fail(realm, "reporter", 2)
    assert realm.get(SCOPE, creds=("reporter", token)).status_code == 200
    _fail(realm, "reporter", 2)
    assert realm.get(SCOPE, creds=("reporter", token)).status_code == 200


def test_ci_job_login_is_never_banned(realm, world, make_ci_job):
    _fail(realm, "gitlab-ci-token", 5)
    _, secret = make_ci_job(world["project"], user=world["users"]["developer"])
    assert realm.get(SCOPE, creds=("gitlab-ci-token", secret)).status_code == 200


@pytest.mark.parametrize("allowlist", [["127.0.0.1"], ["127.0.0.0/8"]])
def test_allow_listed_ips_are_never_banned(realm, world, api_token, settings, allowlist):
    settings.AUTH_BAN_IP_ALLOWLIST = allowlist
    _fail(realm, "reporter", 5)
    assert realm.get(SCOPE, creds=("reporter", api_token(world["users"]["reporter"]))).status_code == 200


def test_ban_can_be_switched_off(realm, world, api_token, settings):
    settings.AUTH_BAN_ENABLED = False
    _fail(realm, "reporter", 5)
    assert realm.get(SCOPE, creds=("reporter", api_token(world["users"]["reporter"]))).status_code == 200


def test_anonymous_requests_are_never_counted(realm, world, api_token):
    for _ in range(5):
        assert realm.get(SCOPE).status_code == 403
    assert realm.get(SCOPE, creds=("reporter", api_token(world["users"]["reporter"]))).status_code == 200


@pytest.mark.skipif(not django_settings.CACHE_URL, reason="Redis only: the database cache's incr is not atomic")
def test_concurrent_failures_are_each_counted_on_redis(settings):
    from concurrent.futures import ThreadPoolExecutor

    from django.core.cache import cache

    from jwt_auth import throttle

    settings.AUTH_BAN_MAX_RETRY = 1000
    cache.clear()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: throttle.record_failure(ip="10.9.9.9", login="bob"), range(200)))
    assert throttle.check(ip="10.9.9.9", login="bob") == (False, True)
    counter, _ban = throttle._keys("10.9.9.9", "bob")
    assert cache.get(counter) == 200
