"""The failed-authentication ban, per (client address, canonical login)."""

from __future__ import annotations

import io
import json
import logging
import threading

import pytest
from django.core.management import call_command
from django.db import connection

from gitlab_core.models import AuditEvent, LoginFailures
from jwt_auth import throttle
from jwt_auth.tests.conftest import basic
from jwt_auth.throttle import BANNED_MESSAGE
from tests_support.factories import make_token

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


@pytest.mark.parametrize("spelling", ["Reporter", "REPORTER", "reporter@example.test", "Reporter@Example.TEST"])
def test_other_spellings_of_a_login_count_together_and_are_banned_together(realm, world, api_token, spelling):
    _fail(realm, "reporter", 2)
    _fail(realm, spelling, 1)
    token = api_token(world["users"]["reporter"])
    for login in ("reporter", spelling):
        assert realm.get(SCOPE, creds=(login, token)).status_code == 403
    # The ban is one row, under the username.
    assert list(LoginFailures.objects.values_list("login", "failures")) == [("reporter", 3)]


def test_an_unknown_login_is_counted_case_folded_as_typed(realm, world):
    _fail(realm, "Nobody", 2)
    _fail(realm, "NOBODY", 1)
    assert realm.get(SCOPE, creds=("nobody", "x")).status_code == 403
    assert list(LoginFailures.objects.values_list("login", flat=True)) == ["nobody"]


def test_a_deploy_token_login_is_counted_case_folded(realm, world, make_deploy_token):
    token, secret = make_deploy_token(world["project"])
    _fail(realm, token.username.upper(), 3)
    assert realm.get(SCOPE, creds=(token.username, secret)).status_code == 403


def test_behind_a_trusted_proxy_each_client_is_banned_alone(realm, world, api_token, settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    token = api_token(world["users"]["reporter"])
    for _ in range(3):
        response = realm.get(SCOPE, creds=("reporter", "wrong"), HTTP_X_FORWARDED_FOR="203.0.113.7")
        assert response.status_code == 401
    banned = realm.get(SCOPE, creds=("reporter", token), HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert banned.status_code == 403
    # Another client behind the same proxy signs in as the same user.
    assert realm.get(SCOPE, creds=("reporter", token), HTTP_X_FORWARDED_FOR="203.0.113.8").status_code == 200
    # A client of the banned address cannot dodge it by prepending a forged entry.
    dodge = realm.get(SCOPE, creds=("reporter", token), HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.7")
    assert dodge.status_code == 403


def test_an_untrusted_peer_cannot_move_its_failures_with_x_forwarded_for(realm, world, api_token, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    for forged in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
        realm.get(SCOPE, creds=("reporter", "wrong"), HTTP_X_FORWARDED_FOR=forged)
    token = api_token(world["users"]["reporter"])
    assert realm.get(SCOPE, creds=("reporter", token), HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    assert list(LoginFailures.objects.values_list("address", flat=True)) == ["127.0.0.1"]


def test_a_failed_login_costs_one_password_hash_whether_or_not_the_user_exists(realm, world, settings):
    settings.PASSWORD_HASHERS = ["tests_support.hashers.CountingMD5PasswordHasher"]
    from tests_support.hashers import CountingMD5PasswordHasher

    costs = {}
    for login in ("reporter", "no-such-user"):
        before = CountingMD5PasswordHasher.encodings
        assert realm.get(SCOPE, creds=(login, "wrong")).status_code == 401
        costs[login] = CountingMD5PasswordHasher.encodings - before
    assert costs == {"reporter": 1, "no-such-user": 1}


def test_the_ban_start_is_logged_once_with_address_and_login(realm, world, caplog):
    caplog.set_level(logging.WARNING, logger="gitlab_core.login_failures")
    _fail(realm, "Reporter", 3)
    started = [r for r in caplog.records if r.getMessage() == "login ban started"]
    assert [(r.kind, r.client_address, r.login, r.failures) for r in started] == [("realm", "127.0.0.1", "reporter", 3)]


def test_realm_bans_lists_and_lifts_by_login(realm, world, api_token, caplog):
    _fail(realm, "reporter", 3)
    _fail(realm, "developer", 1)
    out = io.StringIO()
    call_command("realm_bans", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "kind\taddress\tlogin\tfailures\tuntil"
    assert [line.split("\t")[:4] for line in lines[1:-1]] == [["realm", "127.0.0.1", "reporter", "3"]]
    assert lines[-1] == "1 ban(s) in force."

    out = io.StringIO()
    call_command("realm_bans", "--lift", "Reporter@Example.test", stdout=out)
    assert out.getvalue().splitlines()[-1] == "1 ban(s) lifted for 'Reporter@Example.test'."
    assert realm.get(SCOPE, creds=("reporter", api_token(world["users"]["reporter"]))).status_code == 200
    assert [r.login for r in caplog.records if r.getMessage() == "login ban lifted"] == ["reporter"]


def test_a_ban_and_its_lifting_are_audit_events_but_single_refusals_are_not(realm, world, api_token):
    _fail(realm, "Reporter", 3)
    for _ in range(2):  # refused while banned
        assert realm.get(SCOPE, creds=("reporter", "wrong")).status_code == 403
    call_command("realm_bans", "--lift", "reporter", stdout=io.StringIO())

    events = list(AuditEvent.objects.order_by("id"))
    assert [e.event_name for e in events] == ["login_ban_started", "login_ban_lifted"]
    started, lifted = events
    assert (started.author_id, started.ip_address, started.target_details) == (
        -1,
        "127.0.0.1",
        "realm: reporter from 127.0.0.1",
    )
    assert lifted.details["custom_message"] == "Registry login ban lifted by command"


def test_realm_bans_lifts_every_login_of_an_address(realm, world, api_token):
    _fail(realm, "reporter", 3)
    _fail(realm, "developer", 3)
    out = io.StringIO()
    call_command("realm_bans", "--lift", "127.0.0.1", stdout=out)
    assert "2 ban(s) lifted" in out.getvalue()
    assert realm.get(SCOPE, creds=("developer", api_token(world["users"]["developer"]))).status_code == 200
    out = io.StringIO()
    call_command("realm_bans", "--lift", "127.0.0.1", stdout=out)
    assert "0 ban(s) lifted" in out.getvalue()


def test_a_ban_ends_after_its_time_and_counting_starts_again(realm, world, api_token, settings):
    _fail(realm, "reporter", 3)
    token = api_token(world["users"]["reporter"])
    assert realm.get(SCOPE, creds=("reporter", token)).status_code == 403
    # What an hour passing looks like to the table.
    from datetime import timedelta

    from django.utils import timezone

    past = timezone.now() - timedelta(seconds=1)
    LoginFailures.objects.update(banned_until=past, window_ends_at=past)
    assert realm.get(SCOPE, creds=("reporter", token)).status_code == 200
    _fail(realm, "reporter", 2)
    assert realm.get(SCOPE, creds=("reporter", token)).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_concurrent_failures_are_each_counted_on_this_database(settings):
    from django.db import connections

    settings.AUTH_BAN_MAX_RETRY = 10_000
    errors = []

    def fail_many():
        try:
            for _ in range(25):
                throttle.record_failure(ip="10.9.9.9", login="Bob")
        except Exception as exc:  # noqa: BLE001 -- reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=fail_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert throttle.check(ip="10.9.9.9", login="bob") == (False, True)
    assert LoginFailures.objects.get(address="10.9.9.9", login="bob").failures == 200, connection.vendor


@pytest.mark.django_db(transaction=True)
def test_concurrent_failures_start_one_ban_at_the_limit(settings, caplog):
    from django.db import connections

    settings.AUTH_BAN_MAX_RETRY = 30
    barrier = threading.Barrier(6)

    def fail_some():
        try:
            barrier.wait()
            for _ in range(5):
                throttle.record_failure(ip="10.9.9.8", login="carol")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=fail_some) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert throttle.check(ip="10.9.9.8", login="carol")[0] is True
    assert len([r for r in caplog.records if r.getMessage() == "login ban started"]) == 1


def test_a_nul_byte_or_a_huge_login_is_counted_without_a_database_error(settings):
    # PostgreSQL text holds no NUL: the stored login replaces it; a login is at most 255.
    for login in ("a\x00b", "x" * 5000):
        for _ in range(3):
            throttle.record_failure(ip="10.0.0.5", login=login)
        assert throttle.check(ip="10.0.0.5", login=login) == (True, True)
    assert LoginFailures.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_with_redis_unreachable_the_realm_still_issues_tokens_and_refuses_bad_ones(client, signing_key_settings):
    from django.core.cache import cache
    from django.test import override_settings

    from tests_support.factories import make_group, make_project, make_user
    from tests_support.registry import free_port

    user = make_user("redisless")
    make_project(make_group("grp", owner=user), "svc", creator=user)
    secret = make_token(user)
    url = "/jwt/auth?service=container_registry&scope=repository:grp/svc:pull,push"
    # Nothing listens on that port: the cache the service is configured with is down.
    dead = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/1",
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
    with override_settings(CACHES=dead):
        with pytest.raises(Exception, match="onnect"):
            cache.get("proof-that-the-cache-is-down")
        ok = client.get(url, HTTP_AUTHORIZATION=basic("redisless", secret))
        assert ok.status_code == 200, ok.content
        assert json.loads(ok.content)["token"]
        for _ in range(2):
            assert client.get(url, HTTP_AUTHORIZATION=basic("redisless", "wrong")).status_code == 401
