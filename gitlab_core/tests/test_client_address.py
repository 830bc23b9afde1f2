"""The one client address: TRUSTED_PROXIES and X-Forwarded-For."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from gitlab_core.client_address import AccessLogClientAddress, RequestClientAddress, client_address
from gitlab_core.logging import JsonFormatter

ROOT = Path(__file__).resolve().parents[2]
# Settings that start anywhere, whatever the defaults of DEBUG and SECRET_KEY.
BASE_ENV = {"PATH": "/usr/bin:/bin", "DEBUG": "false", "SECRET_KEY": "k" * 50}


def meta(peer: str, forwarded: str | None = None) -> dict:
    values = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        values["HTTP_X_FORWARDED_FOR"] = forwarded
    return values


def test_without_trusted_proxies_the_peer_is_the_client_and_the_header_is_ignored(settings):
    settings.TRUSTED_PROXIES = []
    assert client_address(meta("192.0.2.10", "203.0.113.5")) == "192.0.2.10"


def test_an_untrusted_peer_cannot_choose_its_address(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_address(meta("192.0.2.10", "203.0.113.5")) == "192.0.2.10"


@pytest.mark.parametrize(
    ("forwarded", "client"),
    [
        ("203.0.113.5", "203.0.113.5"),
        # The client wrote the left part; the proxy appended what it saw.
        ("198.51.100.1, 203.0.113.5", "203.0.113.5"),
        # A chain of trusted proxies is walked through.
        ("203.0.113.5, 10.1.1.1, 10.2.2.2", "203.0.113.5"),
        ("203.0.113.5:4567", "203.0.113.5"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("::ffff:203.0.113.5", "203.0.113.5"),
        # Garbage stops the walk: the nearest trusted hop is all we know.
        ("203.0.113.5, unknown, 10.2.2.2", "10.2.2.2"),
        ("not-an-address", "10.0.0.1"),
        ("\x00\xff,,,", "10.0.0.1"),
        # Every entry a proxy: the farthest one.
        ("10.3.3.3, 10.2.2.2", "10.3.3.3"),
        ("", "10.0.0.1"),
    ],
)
def test_behind_a_trusted_proxy_the_right_most_untrusted_entry_is_the_client(settings, forwarded, client):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_address(meta("10.0.0.1", forwarded)) == client


def test_a_huge_header_reads_a_bounded_number_of_hops(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_address(meta("10.0.0.1", "203.0.113.5, " + ", ".join(["10.9.9.9"] * 10_000))) == "10.9.9.9"


def test_a_peer_that_is_not_an_address_is_kept_as_given(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_address({"REMOTE_ADDR": "unix:/run/web.sock"}) == "unix:/run/web.sock"
    assert client_address({}) == ""


@pytest.mark.parametrize("name", ["TRUSTED_PROXIES", "AUTH_BAN_IP_ALLOWLIST"])
@pytest.mark.parametrize("value", ["10.0.0.0/33", "proxy.example", "10.0.0.1,,nope"])
def test_a_bad_address_list_stops_the_start_naming_the_variable(tmp_path, name, value):
    env = {**BASE_ENV, name: value, "VAR_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", "import gitlab_core.settings"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and name in result.stderr


def test_trusted_proxies_reads_addresses_and_ranges(tmp_path):
    env = {**BASE_ENV, "TRUSTED_PROXIES": " 10.0.0.0/8, 192.0.2.1 ,2001:db8::/32", "VAR_DIR": str(tmp_path)}
    code = "import gitlab_core.settings as s; print(s.TRUSTED_PROXIES)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.stdout.strip() == "['10.0.0.0/8', '192.0.2.1', '2001:db8::/32']", result.stderr


def _format(record: logging.LogRecord) -> dict:
    return json.loads(JsonFormatter().format(record))


def test_the_access_log_names_the_client_not_the_proxy(settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    # What granian logs with scripts/web.sh's format (X-Forwarded-For its only header).
    fmt = '%(addr)s - "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).3f %(_h0)s'
    values = {
        "addr": "127.0.0.1",
        "method": "GET",
        "path": "/jwt/auth",
        "protocol": "HTTP/1.1",
        "status": 401,
        "dt_ms": 1.5,
        "_h0": "6.6.6.6, 203.0.113.5",
    }
    record = logging.LogRecord("granian.access", logging.INFO, __file__, 1, fmt, (values,), None)
    AccessLogClientAddress().filter(record)
    line = _format(record)
    assert line["message"] == '203.0.113.5 - "GET /jwt/auth HTTP/1.1" 401 1.500'
    assert line["peer_address"] == "127.0.0.1"


def test_the_access_log_of_an_untrusted_peer_names_the_peer(settings):
    settings.TRUSTED_PROXIES = []
    fmt = "%(addr)s %(status)d %(_h0)s"
    values = {"addr": "192.0.2.4", "method": "GET", "path": "/", "protocol": "HTTP/1.1", "status": 200}
    record = logging.LogRecord(
        "granian.access", logging.INFO, __file__, 1, fmt, ({**values, "dt_ms": 1.0, "_h0": "203.0.113.5"},), None
    )
    AccessLogClientAddress().filter(record)
    assert _format(record)["message"].startswith("192.0.2.4 - ")


def test_django_request_logs_carry_the_client_address(client, settings, caplog):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    with caplog.at_level(logging.WARNING, logger="django.request"):
        client.get("/no-such-page", HTTP_X_FORWARDED_FOR="203.0.113.5")
    records = [r for r in caplog.records if r.name == "django.request"]
    assert records
    for record in records:
        RequestClientAddress().filter(record)
        assert _format(record)["client_address"] == "203.0.113.5"


def test_the_settings_attach_the_request_filter_to_the_console_handler(settings):
    handler = settings.LOGGING["handlers"]["console"]
    assert "client_address" in handler["filters"]
    assert settings.LOGGING["filters"]["client_address"]["()"].endswith("RequestClientAddress")
