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

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3

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
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
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
    """POST ``body`` to ``url`` (checked again now) and return the answer. Raises
    ``BlockedUrl``, or ``urllib3.exceptions.HTTPError`` when there is no answer.
    ``verify`` False accepts any TLS certificate (a hook's ``enable_ssl_verification``)."""
    target = check_url(url, allow_local=allow_local)
    default_port = 443 if target.scheme == "https" else 80
    host_header = target.host if target.port == default_port else f"{target.host}:{target.port}"
    if ":" in target.host and not target.host.startswith("["):
        host_header = f"[{target.host}]" if target.port == default_port else f"[{target.host}]:{target.port}"
    pool_kwargs = {"timeout": urllib3.Timeout(total=timeout), "retries": False, "maxsize": 1}
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            target.address,
            target.port,
            server_hostname=target.host,
            assert_hostname=target.host if verify else False,
            cert_reqs="CERT_REQUIRED" if verify else "CERT_NONE",
            **pool_kwargs,
        )
    else:
        pool = urllib3.HTTPConnectionPool(target.address, target.port, **pool_kwargs)
    started = time.monotonic()
    try:
        answer = pool.urlopen(
            "POST",
            target.request_path,
            body=body,
            headers={**headers, "Host": host_header},
            redirect=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            excerpt = answer.read(MAX_RESPONSE_BYTES, decode_content=True)
        finally:
            answer.release_conn()
        return Response(
            status=answer.status, duration=time.monotonic() - started, body=excerpt.decode("utf-8", "replace")
        )
    finally:
        pool.close()
