"""The client's address: the one answer every ban, lockout, cache key and log uses.

Without ``TRUSTED_PROXIES`` (the default) the client is the peer, ``REMOTE_ADDR``, and
``X-Forwarded-For`` is ignored: anyone can write that header. When the peer is one of
the trusted proxies (addresses or CIDR ranges), each proxy appended the address it
received the request from, so the header is read from the right: trusted proxies are
skipped and the first entry that is not one is the client. What lies further left was
written by the client and proves nothing.

An entry that is not an IP address (``unknown``, a host name, garbage) cannot be a
client: the walk stops there and the client is the nearest trusted hop that handed the
request on (it spoke to whatever wrote the garbage). Ports (``1.2.3.4:5678``,
``[::1]:80``) are dropped, IPv4-mapped IPv6 addresses are read as IPv4, and at most
``MAX_HOPS`` entries are read. When every entry is a trusted proxy the left-most one is
the client. The result is always a normalized IP address, or the peer as given when
the peer itself is not one (a Unix socket).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# A chain of proxies is a handful of hops; the header's size is bounded by the server.
MAX_HOPS = 16
MAX_LENGTH = 64


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    # Checked at start-up (gitlab_core.env.env_networks); a test may set other values.
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def parse_address(text: str) -> Address | None:
    """An IP address from a header entry or ``REMOTE_ADDR``; None when it is not one."""
    text = text.strip()
    if text.startswith("["):  # [v6] or [v6]:port
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def in_networks(address: Address | str | None, entries: list[str] | tuple[str, ...]) -> bool:
    """Whether ``address`` is one of ``entries`` (addresses or CIDR ranges)."""
    if isinstance(address, str):
        address = parse_address(address)
    if address is None or not entries:
        return False
    return any(address in network for network in _networks(tuple(entries)))


def is_trusted_proxy(address: Address | None) -> bool:
    return in_networks(address, settings.TRUSTED_PROXIES)


def client_address(meta: Mapping[str, str]) -> str:
    """The client's address from a WSGI environ or ``request.META``."""
    peer_text = meta.get("REMOTE_ADDR") or ""
    peer = parse_address(peer_text)
    if peer is None:
        return peer_text[:MAX_LENGTH]
    if not settings.TRUSTED_PROXIES or not is_trusted_proxy(peer):
        return str(peer)
    nearest = peer
    for entry in reversed((meta.get("HTTP_X_FORWARDED_FOR") or "").split(",")[-MAX_HOPS:]):
        if not entry.strip():
            continue
        address = parse_address(entry)
        if address is None:
            break
        if not is_trusted_proxy(address):
            return str(address)
        nearest = address
    return str(nearest)


class AccessLogClientAddress(logging.Filter):
    """granian's access log with the client's address instead of the peer's.

    ``scripts/web.sh`` makes granian read ``X-Forwarded-For`` into the record's
    arguments (its only header placeholder, ``_h0``); this filter replaces ``addr`` by
    the client address, keeps the peer as ``peer_address`` and writes the message
    without the raw header, which a client writes as it likes.
    """

    message = '%(addr)s - "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).3f'

    def filter(self, record: logging.LogRecord) -> bool:
        values = record.args
        if isinstance(values, Mapping) and "addr" in values:
            forwarded = values.get("_h0", "-")
            peer = str(values["addr"])
            meta = {"REMOTE_ADDR": peer, "HTTP_X_FORWARDED_FOR": "" if forwarded == "-" else str(forwarded)}
            try:
                address = client_address(meta)
            except ImproperlyConfigured:  # a process without the service's settings
                address = peer
            record.args = {**values, "addr": address}
            record.msg = self.message
            record.peer_address = peer
        return True


class RequestClientAddress(logging.Filter):
    """Adds ``client_address`` to records that carry a request (``django.request``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        meta = getattr(getattr(record, "request", None), "META", None)
        if isinstance(meta, Mapping) and not hasattr(record, "client_address"):
            record.client_address = client_address(meta)
        return True
