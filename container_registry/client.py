"""The registry HTTP client (distribution API v2).

One client per process (``get_client()``) with one pooled ``requests.Session``. Every
request carries a bearer token minted by our own key for exactly the access it needs;
tokens are cached until shortly before they expire. Manifests are always requested with
every manifest media type in ``Accept`` (without them the registry converts Docker v2
manifests to schema 1 or refuses OCI ones).

Errors: ``TransientRegistryError`` for connection failures, timeouts, 5xx and 429;
``RegistryNotFound``, ``RegistryDeleteDisabled`` and ``RegistryUnauthorized`` (401 after
a freshly minted token) for permanent ones (see ``container_registry.errors``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, urljoin, urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

from container_registry.errors import (
    PermanentRegistryError,
    RegistryDeleteDisabled,
    RegistryError,
    RegistryNotFound,
    RegistryUnauthorized,
    TooManyTags,
    TransientRegistryError,
)
from gitlab_core import metrics
from gitlab_core.ttl_cache import MISSING, TTLCache

logger = logging.getLogger(__name__)

DOCKER_MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST_V2, OCI_INDEX, DOCKER_MANIFEST_LIST)
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
ACCEPT_MANIFESTS = ", ".join(MANIFEST_TYPES)

# The tag-deletion recipe (distribution 2.8 deletes manifests by digest only): a 21-byte config blob (Ruby's
# JSON.pretty_generate({config: {}})) and a layer-less manifest pointing at it. Both bodies
# are fixed, so their digests are constants; the event receiver uses them to recognise
# our own pushes.
DUMMY_CONFIG_BODY = b'{\n  "config": {\n  }\n}'
DUMMY_CONFIG_DIGEST = "sha256:" + hashlib.sha256(DUMMY_CONFIG_BODY).hexdigest()
DUMMY_MANIFEST_BODY = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_V2,
        "config": {"mediaType": DOCKER_CONFIG, "size": len(DUMMY_CONFIG_BODY), "digest": DUMMY_CONFIG_DIGEST},
    },
    indent=2,
).encode()
DUMMY_MANIFEST_DIGEST = "sha256:" + hashlib.sha256(DUMMY_MANIFEST_BODY).hexdigest()

TAGS_PAGE_SIZE = 1000
MAX_PAGES = 2000  # GitLab's MAX_TAGS_PAGES: a guard against a registry that loops.
# distribution's default ``catalog.maxentries``; a registry configured lower sends smaller
# pages and a Link to the next one.
CATALOG_PAGE_SIZE = 1000
# A guard against a registry that loops: 10 million repositories at the default size.
MAX_CATALOG_PAGES = 10_000
# A token is dropped this long before it expires (GitLab reserves 5 s).
TOKEN_RESERVED_SECONDS = 5
# Lifetime of the token of ``ping`` (GitLab's default token duration, 5 minutes).
EMPTY_ACCESS_TOKEN_SECONDS = 300
# Config blobs whose creation time the client remembers (bounded; about 150 bytes each).
CONFIG_CACHE_SIZE = 10000
# Tokens the client keeps: one per access (repository path and actions) it used lately.
TOKEN_CACHE_SIZE = 1000
# The ``sub`` of the tokens this client mints. The registry puts it in every notification
# (``actor.name``), which is how the receiver tells our own reads from users' pulls. It
# holds characters no username or deploy-token name may have, and only our signing key
# can put it in a token (a ``User-Agent`` anyone could copy).
REGISTRY_CLIENT_SUBJECT = "(registry client)"
# The write probe (``delete_probe``): a digest no content has, in a repository no one
# pushes to. Deleting it changes nothing, whatever the answer.
PROBE_REPOSITORY = "gitlab-registry-check/write-probe"
PROBE_DIGEST = "sha256:" + "0" * 64
WRITABLE, DELETES_DISABLED, READ_ONLY = "writable", "deletes disabled", "read-only"
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_FRACTION = re.compile(r"(\.\d{6})\d+")


@dataclass(frozen=True)
class Manifest:
    media_type: str
    digest: str
    body: dict
    size: int  # bytes of the manifest itself

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES or "manifests" in self.body

    @property
    def config(self) -> dict | None:
        config = self.body.get("config")
        return config if isinstance(config, dict) else None

    @property
    def layers(self) -> list[dict]:
        layers = self.body.get("layers")
        return [layer for layer in layers if isinstance(layer, dict)] if isinstance(layers, list) else []

    @property
    def children(self) -> list[dict]:
        children = self.body.get("manifests")
        return [c for c in children if isinstance(c, dict)] if isinstance(children, list) else []


@dataclass(frozen=True)
class TagDetails:
    name: str
    digest: str
    revision: str | None
    short_revision: str | None
    created_at: dt.datetime | None
    # GitLab's ``total_size``: the sum of the image's layer sizes (config and manifest
    # not counted); None for an image index or manifest list, and for schema 1.
    total_size: int | None
    media_type: str
    # Every blob (manifests included) this tag references, digest -> size: the input of
    # deduplicated repository and project sizes.
    blobs: dict[str, int] = field(default_factory=dict, compare=False)


def parse_timestamp(value) -> dt.datetime | None:
    """An RFC 3339 timestamp (nanoseconds allowed) as an aware datetime, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        # Python 3.11 reads the registry's own form (nanoseconds, "Z") as it is.
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        text = _FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00").replace("z", "+00:00")
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _repository_access(path: str, actions: list[str]) -> list[dict]:
    return [{"type": "repository", "name": path, "actions": actions}]


class RegistryClient:
    def __init__(self, *, base_url: str, timeout: float, pool_size: int = 16):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = "gitlab-registry-side"
        self._tokens = TTLCache(ttl=None, max_entries=TOKEN_CACHE_SIZE, max_bytes=8 * 1024 * 1024)
        # A blob never changes under its digest: its date is kept until evicted.
        self._config_created = TTLCache(ttl=None, max_entries=CONFIG_CACHE_SIZE, max_bytes=4 * 1024 * 1024)

    # --- tokens ------------------------------------------------------------------------
    def _token(self, access: list[dict], *, fresh: bool = False) -> str:
        key = tuple((a["type"], a["name"], tuple(a["actions"])) for a in access)
        if not fresh:
            cached = self._tokens.get(key)
            if cached is not None:
                return cached
        from jwt_auth.keys import KeyConfigurationError
        from jwt_auth.tokens import mint_registry_token

        now = time.monotonic()
        # A token without access (``ping``) has a fixed lifetime: the admin-set one is read
        # from the database, and readiness must tell a registry fault from a database one.
        lifetime = None if access else EMPTY_ACCESS_TOKEN_SECONDS
        try:
            token, expires_in = mint_registry_token(access=access, subject=REGISTRY_CLIENT_SUBJECT, lifetime=lifetime)
        except KeyConfigurationError as exc:
            raise RegistryUnauthorized(f"cannot sign registry tokens: {exc}") from exc
        self._tokens.set(key, token, expires_at=now + max(0, int(expires_in) - TOKEN_RESERVED_SECONDS))
        return token

    # --- transport -----------------------------------------------------------------------
    def _send(
        self,
        method: str,
        url: str,
        *,
        access: list[dict],
        headers: dict | None = None,
        timeout: float | None = None,
        **kwargs,
    ):
        """Send one request; retry once with a fresh token on 401; map failures to errors."""
        for fresh in (False, True):
            request_headers = {"Authorization": f"Bearer {self._token(access, fresh=fresh)}", **(headers or {})}
            started = time.perf_counter()
            try:
                response = self.session.request(
                    method, url, headers=request_headers, timeout=timeout or self.timeout, **kwargs
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                _count(method, "connection_error", started)
                raise TransientRegistryError(f"{method} {_path_of(url)}: {exc.__class__.__name__}") from exc
            except requests.RequestException as exc:
                _count(method, "connection_error", started)
                raise TransientRegistryError(f"{method} {_path_of(url)}: {exc}") from exc
            _count(method, _result_of(response.status_code), started)
            if response.status_code != 401:
                break
        return self._check(method, url, response)

    @staticmethod
    def _check(method: str, url: str, response: requests.Response) -> requests.Response:
        status = response.status_code
        if status < 400:
            return response
        detail = _error_detail(response)
        message = f"{method} {_path_of(url)}: {status} {detail}".strip()
        if status == 429 or status >= 500:
            raise TransientRegistryError(message, status=status)
        if status == 401:
            raise RegistryUnauthorized(message, status=status)
        if status == 404:
            raise RegistryNotFound(message, status=status)
        if status == 405:
            raise RegistryDeleteDisabled(message, status=status, allow=response.headers.get("Allow"))
        raise PermanentRegistryError(message, status=status)

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    # --- reads ---------------------------------------------------------------------------
    def ping(self, *, timeout: float | None = None) -> dict[str, str]:
        """``GET /v2/`` with an empty-access token; returns the response headers
        (lower-cased names) that identify the registry. ``timeout``: seconds, instead of
        ``REGISTRY_REQUEST_TIMEOUT``."""
        response = self._send("GET", self._url("/v2/"), access=[], timeout=timeout)
        return {k.lower(): v for k, v in response.headers.items()}

    def list_tags(self, path: str, *, limit: int | None = None) -> list[str]:
        """Every tag of ``path``, sorted by name. A repository the registry does not know
        (never pushed, or all tags deleted) has no tags. With ``limit``, reading stops
        with ``TooManyTags`` as soon as more than ``limit`` names were read (at most one
        registry page beyond it is held)."""
        access = _repository_access(path, ["pull"])
        url = self._url(f"/v2/{path}/tags/list?n={TAGS_PAGE_SIZE}")
        tags: set[str] = set()
        for _ in range(MAX_PAGES):
            try:
                response = self._send("GET", url, access=access)
            except RegistryNotFound:
                break
            tags.update(t for t in (_json(response).get("tags") or []) if isinstance(t, str))
            if limit is not None and len(tags) > limit:
                raise TooManyTags(path, limit)
            url = _next_link(response, self.base_url)
            if url is None:
                break
        else:
            raise PermanentRegistryError(f"tags/list of {path} did not end after {MAX_PAGES} pages")
        return sorted(tags)

    def catalog(self) -> Iterator[str]:
        """Every repository path in the registry (``/v2/_catalog``, all pages)."""
        for page in self.catalog_pages():
            yield from page

    def catalog_pages(self, *, page_size: int | None = None) -> Iterator[list[str]]:
        """The registry's repository paths a page at a time (``?n=`` and ``last=``,
        following the ``Link`` header), in the registry's order: one page in memory.
        Raises ``PermanentRegistryError`` when the pages do not end (a ``Link`` that
        points back at the same page, or more than ``MAX_CATALOG_PAGES``)."""
        access = [{"type": "registry", "name": "catalog", "actions": ["*"]}]
        size = page_size or CATALOG_PAGE_SIZE
        url: str | None = self._url(f"/v2/_catalog?n={size}")
        for _ in range(MAX_CATALOG_PAGES):
            response = self._send("GET", url, access=access)
            page = [r for r in (_json(response).get("repositories") or []) if isinstance(r, str)]
            yield page
            next_url = _next_link(response, self.base_url)
            if next_url is None and len(page) >= size:
                # distribution 2.8 can end a full page without a Link when its last path
                # is followed by its parent (a child named with a leading digit walks
                # first): ask for the page after it; an empty page ends the catalog.
                next_url = self._url(f"/v2/_catalog?n={size}&last={quote(page[-1], safe='')}")
            if next_url == url:
                raise PermanentRegistryError(f"the catalog's next page is the page itself ({_path_of(url)})")
            url = next_url
            if url is None:
                return
        raise PermanentRegistryError(f"the catalog did not end after {MAX_CATALOG_PAGES} pages")

    def get_manifest(self, path: str, reference: str) -> Manifest:
        """The manifest (image, list or index) at a tag or digest. Raises RegistryNotFound."""
        response = self._send(
            "GET",
            self._url(f"/v2/{path}/manifests/{reference}"),
            access=_repository_access(path, ["pull"]),
            headers={"Accept": ACCEPT_MANIFESTS},
        )
        raw = response.content
        body = _json(response)
        digest = response.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(raw).hexdigest()
        media_type = (
            body.get("mediaType") or response.headers.get("Content-Type", "").split(";")[0].strip() or OCI_MANIFEST
        )
        return Manifest(media_type=media_type, digest=digest, body=body, size=len(raw))

    def tag_digest(self, path: str, tag: str) -> str | None:
        """The manifest digest a tag points at (HEAD), or None if the tag does not exist."""
        try:
            response = self._send(
                "HEAD",
                self._url(f"/v2/{path}/manifests/{tag}"),
                access=_repository_access(path, ["pull"]),
                headers={"Accept": ACCEPT_MANIFESTS},
            )
        except RegistryNotFound:
            return None
        return response.headers.get("Docker-Content-Digest")

    def get_blob_json(self, path: str, digest: str) -> dict:
        response = self._send("GET", self._url(f"/v2/{path}/blobs/{digest}"), access=_repository_access(path, ["pull"]))
        return _json(response)

    def tag_details(self, path: str, tag: str) -> TagDetails | None:
        """Digest, revision (config digest hex), creation time (config blob ``created``),
        total size (its layers) and every blob it reaches (children of an index
        included) of a tag; None if the tag does not exist."""
        try:
            manifest = self.get_manifest(path, tag)
        except RegistryNotFound:
            return None
        blobs: dict[str, int] = {}
        image = self._collect_blobs(path, manifest, blobs)
        config = image.config if image else None
        created_at = None
        if config and isinstance(config.get("digest"), str):
            created_at = self._config_created_at(path, config["digest"])
        revision = config["digest"].split(":", 1)[-1] if config and isinstance(config.get("digest"), str) else None
        return TagDetails(
            name=tag,
            digest=manifest.digest,
            revision=revision,
            short_revision=revision[:9] if revision else None,
            created_at=created_at,
            total_size=_layers_size(manifest),
            media_type=manifest.media_type,
            blobs=blobs,
        )

    def _config_created_at(self, path: str, digest: str) -> dt.datetime | None:
        """The ``created`` time of an image config blob. A blob never changes under its
        digest, so the answer is remembered: tags sharing an image then cost one read
        (the manifest) instead of two, which halved a cleanup run's reads (bench/cleanup)."""
        created = self._config_created.get(digest, MISSING)
        if created is not MISSING:
            return created
        try:
            created = parse_timestamp(self.get_blob_json(path, digest).get("created"))
        except RegistryNotFound:
            return None  # not remembered: the blob may be pushed again
        self._config_created.set(digest, created)
        return created

    def tag_created_at(self, path: str, tag: str) -> dt.datetime | None:
        details = self.tag_details(path, tag)
        return details.created_at if details else None

    def manifest_blobs(self, path: str, reference: str) -> dict[str, int]:
        """Every blob digest (manifests, configs, layers) reachable from a reference, with
        its size. Used for deduplicated sizes."""
        blobs: dict[str, int] = {}
        self._collect_blobs(path, self.get_manifest(path, reference), blobs)
        return blobs

    def _collect_blobs(self, path: str, manifest: Manifest, blobs: dict[str, int]) -> Manifest | None:
        """Add ``manifest``'s blobs to ``blobs``; return the first image manifest found
        (the manifest itself, or the first child of an index)."""
        blobs[manifest.digest] = manifest.size
        if not manifest.is_index:
            for descriptor in [manifest.config, *manifest.layers]:
                if descriptor and isinstance(descriptor.get("digest"), str):
                    blobs[descriptor["digest"]] = _size(descriptor)
            return manifest
        first_image = None
        for child in manifest.children:
            digest = child.get("digest")
            if not isinstance(digest, str) or digest in blobs:
                continue
            try:
                image = self._collect_blobs(path, self.get_manifest(path, digest), blobs)
            except RegistryNotFound:
                continue  # a child that was garbage-collected adds nothing
            first_image = first_image or image
        return first_image

    # --- writes --------------------------------------------------------------------------
    def delete_tags(self, path: str, tags: list[str]) -> list[str]:
        """Delete single tags with the dummy-manifest recipe, so that other tags sharing
        their digest survive. Returns the names deleted. Raises like every call; a tag
        whose PUT is refused is skipped."""
        if not tags:
            return []
        access = _repository_access(path, ["pull", "push", "delete"])
        self._ensure_dummy_config(path, access)
        replaced: list[str] = []
        digest = DUMMY_MANIFEST_DIGEST
        for tag in tags:
            try:
                response = self._send(
                    "PUT",
                    self._url(f"/v2/{path}/manifests/{tag}"),
                    access=access,
                    headers={"Content-Type": DOCKER_MANIFEST_V2},
                    data=DUMMY_MANIFEST_BODY,
                )
            except PermanentRegistryError as exc:
                if isinstance(exc, RegistryUnauthorized):
                    raise
                logger.warning("could not re-point tag %s:%s: %s", path, tag, exc)
                continue
            digest = response.headers.get("Docker-Content-Digest") or digest
            replaced.append(tag)
        if replaced:
            self.delete_manifest(path, digest)
        return replaced

    def _ensure_dummy_config(self, path: str, access: list[dict]) -> None:
        try:
            self._send("HEAD", self._url(f"/v2/{path}/blobs/{DUMMY_CONFIG_DIGEST}"), access=access)
            return
        except RegistryNotFound:
            pass
        started = self._send("POST", self._url(f"/v2/{path}/blobs/uploads/"), access=access)
        location = urljoin(self.base_url + "/", started.headers["Location"])
        separator = "&" if "?" in location else "?"
        self._send(
            "PUT",
            f"{location}{separator}digest={DUMMY_CONFIG_DIGEST}",
            access=access,
            headers={"Content-Type": "application/octet-stream"},
            data=DUMMY_CONFIG_BODY,
        )

    def delete_manifest(self, path: str, digest: str) -> bool:
        """Delete a manifest by digest (untags every tag pointing at it). False when the
        manifest was already gone."""
        try:
            self._send(
                "DELETE", self._url(f"/v2/{path}/manifests/{digest}"), access=_repository_access(path, ["delete"])
            )
        except RegistryNotFound:
            return False
        return True

    # --- probes --------------------------------------------------------------------------
    def delete_probe(self) -> str:
        """How the registry answers a delete that cannot change anything (a manifest digest
        nothing has): ``WRITABLE`` (404: deletes enabled), ``DELETES_DISABLED`` (405
        UNSUPPORTED: ``storage.delete.enabled`` is off) or ``READ_ONLY`` (405 with an
        ``Allow`` header without DELETE: ``storage.maintenance.readonly`` is on, which
        refuses pushes too). Verified on distribution 2.8. Raises like every call."""
        path = PROBE_REPOSITORY
        url = self._url(f"/v2/{path}/manifests/{PROBE_DIGEST}")
        try:
            self._send("DELETE", url, access=_repository_access(path, ["delete"]))
        except RegistryNotFound:
            return WRITABLE
        except RegistryDeleteDisabled as exc:
            allowed = {m.strip().upper() for m in (exc.allow or "").split(",") if m.strip()}
            return READ_ONLY if exc.allow is not None and "DELETE" not in allowed else DELETES_DISABLED
        raise PermanentRegistryError(f"DELETE {_path_of(url)} of a digest nothing has succeeded")


def _layers_size(manifest: Manifest) -> int | None:
    if manifest.is_index or manifest.body.get("schemaVersion") != 2:
        return None
    return sum(_size(layer) for layer in manifest.layers)


def _result_of(status: int) -> str:
    if status < 400:
        return "ok"
    if status == 429 or status >= 500:
        return "server_error"
    return {401: "unauthorized", 404: "not_found"}.get(status, "client_error")


def _count(method: str, result: str, started: float) -> None:
    metrics.REGISTRY_CLIENT_REQUESTS.labels(method, result).inc()
    metrics.REGISTRY_CLIENT_DURATION.labels(method).observe(time.perf_counter() - started)


def _size(descriptor: dict) -> int:
    size = descriptor.get("size")
    return size if isinstance(size, int) and size >= 0 else 0


def _json(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError as exc:
        where = _path_of(response.url)
        raise PermanentRegistryError(f"the registry answered {where} with a body that is not JSON") from exc
    return body if isinstance(body, dict) else {}


def _error_detail(response: requests.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict))
    except (ValueError, AttributeError):
        return ""


def _next_link(response: requests.Response, base_url: str) -> str | None:
    match = _LINK_NEXT.search(response.headers.get("Link", ""))
    return urljoin(base_url + "/", match.group(1)) if match else None


def _path_of(url: str) -> str:
    return urlsplit(url).path


_client: RegistryClient | None = None
_client_key: tuple | None = None
_client_lock = threading.Lock()


def get_client() -> RegistryClient:
    """The process's registry client (a new one after a fork or a settings change)."""
    global _client, _client_key
    key = (os.getpid(), settings.REGISTRY_API_URL, settings.REGISTRY_REQUEST_TIMEOUT)
    with _client_lock:
        if _client is None or _client_key != key:
            _client = RegistryClient(base_url=settings.REGISTRY_API_URL, timeout=settings.REGISTRY_REQUEST_TIMEOUT)
            _client_key = key
        return _client


__all__ = [
    "DUMMY_CONFIG_DIGEST",
    "DUMMY_MANIFEST_DIGEST",
    "REGISTRY_CLIENT_SUBJECT",
    "Manifest",
    "RegistryClient",
    "RegistryError",
    "TagDetails",
    "get_client",
    "parse_timestamp",
]
