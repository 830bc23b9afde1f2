"""Registry client faults that a healthy real registry never produces (5xx, 429, a
refused token), served by a tiny HTTP server on loopback; the happy paths run against the
real registry in test_e2e_client.py."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from container_registry.client import (
    DUMMY_CONFIG_DIGEST,
    DUMMY_MANIFEST_DIGEST,
    RegistryClient,
    get_client,
    parse_timestamp,
)
from container_registry.errors import (
    PermanentRegistryError,
    RegistryDeleteDisabled,
    RegistryNotFound,
    RegistryUnauthorized,
    TransientRegistryError,
)

pytestmark = pytest.mark.django_db


class FaultServer:
    """Answers every request with the next scripted (status, headers, body)."""

    def __init__(self, responses):
        self.responses = list(responses)
        self.requests: list[tuple[str, str, dict]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                outer.requests.append((self.command, self.path, dict(self.headers)))
                status, headers, body = outer.responses.pop(0) if outer.responses else (500, {}, b"")
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fault_server():
    servers = []

    def start(*responses):
        server = FaultServer(responses)
        servers.append(server)
        return server, RegistryClient(base_url=server.url, timeout=2)

    yield start
    for server in servers:
        server.close()


def errors_body(code: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": code.lower()}]}).encode()


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_server_errors_and_throttling_are_transient(fault_server, status):
    _server, client = fault_server((status, {}, b""))
    with pytest.raises(TransientRegistryError) as error:
        client.list_tags("acme/app")
    assert error.value.status == status


def test_connection_refused_is_transient(unreachable_registry):
    with pytest.raises(TransientRegistryError):
        get_client().ping()


def test_timeout_is_transient(fault_server):
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # accepts, never answers
    client = RegistryClient(base_url=f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=0.3)
    try:
        with pytest.raises(TransientRegistryError):
            client.ping()
    finally:
        listener.close()


def test_401_is_retried_once_with_a_fresh_token_then_permanent(fault_server):
    server, client = fault_server((401, {}, errors_body("UNAUTHORIZED")), (401, {}, errors_body("UNAUTHORIZED")))
    with pytest.raises(RegistryUnauthorized):
        client.ping()
    tokens = [headers["Authorization"] for _method, _path, headers in server.requests]
    assert len(tokens) == 2 and tokens[0] != tokens[1]


def test_401_then_success_recovers(fault_server):
    server, client = fault_server((401, {}, b""), (200, {"Docker-Distribution-Api-Version": "registry/2.0"}, b"{}"))
    assert client.ping()["docker-distribution-api-version"] == "registry/2.0"


def test_tokens_are_cached_per_access(fault_server):
    ok = (200, {"Content-Type": "application/json"}, b'{"tags": ["b", "a"]}')
    server, client = fault_server(ok, ok)
    assert client.list_tags("acme/app") == ["a", "b"]
    assert client.list_tags("acme/app") == ["a", "b"]
    first, second = (headers["Authorization"] for _m, _p, headers in server.requests)
    assert first == second


def test_tag_list_follows_link_pages(fault_server):
    server, client = fault_server(
        (200, {"Link": '</v2/acme/app/tags/list?last=b&n=2>; rel="next"'}, b'{"tags": ["b", "a"]}'),
        (200, {}, b'{"name": "acme/app", "tags": ["c"]}'),
    )
    assert client.list_tags("acme/app") == ["a", "b", "c"]
    assert server.requests[1][1] == "/v2/acme/app/tags/list?last=b&n=2"


def test_unknown_repository_has_no_tags_but_unknown_manifest_raises(fault_server):
    _server, client = fault_server((404, {}, errors_body("NAME_UNKNOWN")), (404, {}, errors_body("MANIFEST_UNKNOWN")))
    assert client.list_tags("acme/none") == []
    with pytest.raises(RegistryNotFound):
        client.get_manifest("acme/none", "v1")


def test_delete_disabled_is_permanent(fault_server):
    _server, client = fault_server((405, {}, errors_body("UNSUPPORTED")))
    with pytest.raises(RegistryDeleteDisabled):
        client.delete_manifest("acme/app", "sha256:" + "0" * 64)


def test_body_that_is_not_json_is_a_permanent_error(fault_server):
    _server, client = fault_server((200, {}, b"<html>proxy error</html>"))
    with pytest.raises(PermanentRegistryError):
        client.list_tags("acme/app")


def test_manifest_requests_always_send_every_manifest_type(fault_server):
    server, client = fault_server((200, {}, b'{"schemaVersion": 2, "layers": []}'))
    client.get_manifest("acme/app", "v1")
    accept = server.requests[0][2]["Accept"]
    for media_type in (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ):
        assert media_type in accept


def test_dummy_digests_are_gitlabs():
    assert DUMMY_CONFIG_DIGEST == "sha256:4435000728ee66e6a80e55637fc22725c256b61de344a2ecdeaac6bdb36e8bc3"
    # The digest the registry reported for this body in the captured tag-delete recipe.
    assert DUMMY_MANIFEST_DIGEST == "sha256:7bdb5df100f9b601290cb6d72fbeb5b3aa73f4908fe1d8075b00df013c79c43c"


def test_timestamps_with_nanoseconds_parse():
    parsed = parse_timestamp("2026-11-27T12:40:00.34279123Z")
    assert (parsed.microsecond, parsed.utcoffset().total_seconds()) == (342791, 0)
    assert parse_timestamp("garbage") is None
    assert parse_timestamp(None) is None
