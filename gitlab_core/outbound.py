"""Requests to addresses users chose (webhooks): the local-network rule, and a POST that
connects to the address it checked.

A URL is refused when its host is, or resolves to, a loopback, private, link-local,
shared, multicast, reserved or unspecified address, unless the instance allows local
requests (GitLab's ``allow_local_requests_from_web_hooks_and_services``). The rule is
checked when a hook is saved and again at every delivery, and the delivery connects to
the very address that passed (the ``Host`` header and TLS name stay the URL's), so a
name that resolves elsewhere a second later (DNS rebinding) cannot reach the inside.
Redirects are not followed.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

ALLOWED_SCHEMES = ("http", "https")
MAX_URL_LENGTH = 2048
# Of a response, at most this much is kept for the delivery log.
MAX_RESPONSE_BYTES = 8 * 1024


class BlockedUrl(Exception):
    """A URL we must not request; the message says why, in GitLab's words."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    address: str
    request_path: str


@dataclass(frozen=True)
class Response:
    status: int
    duration: float
    body: str


def _is_local(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        # IPv4 addresses carried inside IPv6 ones (mapped, 6to4, Teredo's client) are
        # judged as the IPv4 address they reach.
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
        if embedded is not None and _is_local(embedded):
            return True
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv4Address) and address in ipaddress.ip_network("100.64.0.0/10"))
    )


def check_url(url: str, *, allow_local: bool) -> Target:
    """Where ``url`` leads, after the local-network rule. Raises ``BlockedUrl``."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH or any(c in url for c in "\x00\r\n\t "):
        raise BlockedUrl("URL is blocked: Only allowed schemes are http, https")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise BlockedUrl("URL is blocked: URI is invalid")
    if parts.scheme not in ALLOWED_SCHEMES:
        raise BlockedUrl("URL is blocked: Only allowed schemes are http, https")
    host = parts.hostname
    if not host:
        raise BlockedUrl("URL is blocked: URI is invalid")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        raise BlockedUrl("URL is blocked: Host cannot be resolved or invalid")
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if not allow_local and _is_local(address):
            if address.is_loopback or (
                isinstance(address, ipaddress.IPv6Address)
                and address.ipv4_mapped is not None
                and address.ipv4_mapped.is_loopback
            ):
                raise BlockedUrl("URL is blocked: Requests to localhost are not allowed")
            raise BlockedUrl("URL is blocked: Requests to the local network are not allowed")
        addresses.append(str(address))
    if not addresses:
        raise BlockedUrl("URL is blocked: Host cannot be resolved or invalid")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme=parts.scheme, host=host, port=port, address=addresses[0], request_path=path)


def post(
    url: str, body: bytes, headers: dict[str, str], *, allow_local: bool, timeout: float, verify: bool = True
) -> Response:
    """POST ``body`` to ``url`` (checked again now) and return the answer, all within
    ``timeout`` seconds however slowly the other side trickles its answer. Raises
    ``BlockedUrl``, or ``OSError`` (``http.client.HTTPException`` included) when no
    whole answer came in time. ``verify`` False accepts any TLS certificate (a hook's
    ``enable_ssl_verification``)."""
    target = check_url(url, allow_local=allow_local)
    host = _ascii_host(target.host)
    default_port = 443 if target.scheme == "https" else 80
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if target.port == default_port else f"{shown}:{target.port}"
    started = time.monotonic()
    sock = socket.create_connection((target.address, target.port), timeout=timeout)
    # One deadline for the whole exchange: a per-read timeout alone lets a server that
    # sends a byte now and then hold the worker for hours.
    watchdog = threading.Timer(timeout, _shut, args=(sock,))
    watchdog.daemon = True
    watchdog.start()
    try:
        if target.scheme == "https":
            context = ssl.create_default_context()
            if not verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            sock = context.wrap_socket(sock, server_hostname=host)
            watchdog.args = (sock,)
        connection = http.client.HTTPConnection(target.address, target.port, timeout=timeout)
        connection.sock = sock
        connection.putrequest("POST", target.request_path, skip_host=True, skip_accept_encoding=True)
        for name, value in {**headers, "Host": host_header, "Content-Length": str(len(body))}.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        answer = connection.getresponse()
        excerpt = answer.read(MAX_RESPONSE_BYTES)
        if time.monotonic() - started > timeout:
            raise TimeoutError("no whole answer within the timeout")
        return Response(
            status=answer.status, duration=time.monotonic() - started, body=excerpt.decode("utf-8", "replace")
        )
    except ValueError as exc:
        # A header value http.client refuses (a control character): no request was sent.
        raise http.client.HTTPException(str(exc)) from None
    finally:
        watchdog.cancel()
        sock.close()


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _ascii_host(host: str) -> str:
    """The host as it travels in ``Host`` and as the TLS server name (IDNA for names
    beyond ASCII)."""
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        raise BlockedUrl("URL is blocked: Host cannot be resolved or invalid") from None
