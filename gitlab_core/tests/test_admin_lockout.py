"""The admin sign-in lockout per (client address, user), and the page of login bans."""

from __future__ import annotations

import io
import logging

import pytest
from django.core.management import call_command
from django.test import Client

from gitlab_core.models import LoginFailures
from tests_support.factories import make_user

pytestmark = pytest.mark.django_db
LOGIN = "/admin/login/?next=/admin/"
BANS = "/admin/gitlab_core/loginfailures/"


@pytest.fixture(autouse=True)
def gitlab_numbers(settings):
    settings.ADMIN_LOCKOUT_ENABLED = True
    settings.ADMIN_LOCKOUT_MAX_FAILURES = 10
    settings.ADMIN_LOCKOUT_FIND_TIME = 600
    settings.ADMIN_LOCKOUT_TIME = 600
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.TRUSTED_PROXIES = []


def sign_in(client: Client, username: str, password: str, address: str = "127.0.0.1"):
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=address)


def test_ten_wrong_passwords_lock_the_right_one_out_with_a_message(client):
    make_user("root", admin=True, password="root-password-1")
    for attempt in range(9):
        response = sign_in(client, "root", f"wrong-{attempt}")
        assert response.status_code == 200
        assert "correct username and password" in response.content.decode()
    tenth = sign_in(client, "root", "wrong-10")
    assert "Too many failed sign-in attempts from this address. Try again in 10 minute(s)." in tenth.content.decode()

    locked = sign_in(client, "root", "root-password-1")
    assert locked.status_code == 200
    assert "Too many failed sign-in attempts" in locked.content.decode()
    assert client.get("/admin/").status_code == 302  # not signed in


def test_another_address_still_signs_in_and_other_spellings_count_together(client):
    make_user("root", admin=True, password="root-password-1")  # email root@example.test
    for login in ["Root", "ROOT", "root@example.test", "root"] * 3:
        sign_in(client, login, "wrong")
    assert "Too many failed" in sign_in(client, "root", "root-password-1").content.decode()
    assert sign_in(Client(), "root", "root-password-1", address="192.0.2.77").status_code == 302


def test_a_success_before_the_limit_clears_the_count(client):
    make_user("root", admin=True, password="root-password-1")
    for _ in range(9):
        sign_in(client, "root", "wrong")
    assert sign_in(client, "root", "root-password-1").status_code == 302
    assert not LoginFailures.objects.exists()


def test_behind_a_trusted_proxy_the_lockout_is_per_real_client(client, settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    make_user("root", admin=True, password="root-password-1")
    for _ in range(10):
        client.post(LOGIN, {"username": "root", "password": "wrong"}, HTTP_X_FORWARDED_FOR="203.0.113.5")
    good = {"username": "root", "password": "root-password-1", "next": "/admin/"}
    assert client.post(LOGIN, good, HTTP_X_FORWARDED_FOR="203.0.113.5").status_code == 200
    assert Client().post(LOGIN, good, HTTP_X_FORWARDED_FOR="203.0.113.6").status_code == 302
    assert list(LoginFailures.objects.values_list("kind", "address", "login")) == [("admin", "203.0.113.5", "root")]


def test_lockouts_are_listed_and_lifted_by_the_command(client, caplog):
    make_user("root", admin=True, password="root-password-1")
    for _ in range(10):
        sign_in(client, "root", "wrong")
    out = io.StringIO()
    call_command("realm_bans", "--kind", "admin", stdout=out)
    assert [line.split("\t")[:4] for line in out.getvalue().splitlines()[1:-1]] == [
        ["admin", "127.0.0.1", "root", "10"]
    ]
    out = io.StringIO()
    call_command("realm_bans", stdout=out)  # realm bans only by default
    assert out.getvalue().splitlines()[-1] == "0 ban(s) in force."

    with caplog.at_level(logging.WARNING, logger="gitlab_core.login_failures"):
        call_command("realm_bans", "--kind", "admin", "--lift", "ROOT", stdout=io.StringIO())
    assert [r.by for r in caplog.records if r.getMessage() == "login ban lifted"] == ["command"]
    assert sign_in(client, "root", "root-password-1").status_code == 302


def test_administrators_see_bans_and_lift_them_on_the_admin_page(client, caplog):
    make_user("root", admin=True, password="root-password-1")
    for _ in range(10):
        sign_in(client, "root", "wrong", address="192.0.2.9")
    LoginFailures.objects.create(
        kind="realm",
        address="192.0.2.10",
        login="alice",
        failures=30,
        window_ends_at="2999-01-01T00:00Z",
        banned_until="2999-01-01T00:00Z",
    )
    admin_client = Client()
    assert sign_in(admin_client, "root", "root-password-1").status_code == 302

    page = admin_client.get(BANS)
    assert page.status_code == 200
    text = page.content.decode()
    assert "192.0.2.9" in text and "192.0.2.10" in text and "alice" in text
    assert admin_client.get(BANS + "add/").status_code == 403

    rows = list(LoginFailures.objects.values_list("pk", flat=True))
    with caplog.at_level(logging.WARNING, logger="gitlab_core.login_failures"):
        response = admin_client.post(BANS, {"action": "lift", "_selected_action": rows}, follow=True)
    assert "Lifted 2 ban(s)" in response.content.decode()
    assert not LoginFailures.objects.exists()
    assert {r.by for r in caplog.records if r.getMessage() == "login ban lifted"} == {"admin:root"}
    assert sign_in(client, "root", "root-password-1", address="192.0.2.9").status_code == 302


def test_the_lockout_can_be_switched_off(client, settings):
    settings.ADMIN_LOCKOUT_ENABLED = False
    make_user("root", admin=True, password="root-password-1")
    for _ in range(12):
        sign_in(client, "root", "wrong")
    assert sign_in(client, "root", "root-password-1").status_code == 302
