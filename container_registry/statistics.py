"""A project's registry size (GitLab's ``statistics.container_registry_size``) and its
debounced refresh after registry events.

The size is what the project's images take in the registry: every manifest, config and
layer blob its repositories' tags reach, each digest once (``maintenance.usage``). GitLab
reads that number from its own registry's API and shows 0 for any other registry; we
measure it through the distribution API instead, which costs a manifest read per tag, so
it is refreshed once per burst of events, not once per event:

* an event that changes the size (a tag pushed, a tag or manifest deleted) marks the
  project's size ``stale`` (``services.stale_sql``) and asks for a refresh;
* ``request_size_refresh`` enqueues a refresh due in ``REGISTRY_SIZE_REFRESH_DELAY_SECONDS``
  unless one is pending: a key added to Django's cache (``cache.add`` is atomic, so one
  process among many enqueues), and a local note that spares the cache round trip for
  the next events of the burst: until shortly before the refresh is due in the process
  that enqueued it, for a second in the others (``OTHER_PROCESS_NOTE_SECONDS``);
* ``refresh_registry_size`` (the task's service) drops the pending key *before* it reads
  the registry, so an event that arrives while it measures enqueues the next refresh
  (or, in a process that saw the key a moment before, sets the flag, and the refresh
  asks for the next when it finds the flag set again);
* the stale flag is the record of what is still owed: a refresh clears it before it
  measures, and ``refresh_stale_sizes`` (periodic) asks again for projects whose refresh
  was lost (a broker outage, a worker killed).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.core.cache import cache
from django.db.models import F

from container_registry.client import RegistryClient
from container_registry.maintenance.usage import image_blobs
from container_registry.models import ContainerRepository, ProjectRegistryStatistics
from container_registry.services import store_registry_size
from container_registry.signals import registry_size_refresh_requested
from gitlab_core.ttl_cache import TTLCache
from projects.models import Project

logger = logging.getLogger(__name__)

# A pending key outlives its refresh's due time by this much, so that a refresh delayed
# in a busy queue is not doubled; a lost one is asked for again once the key expires.
PENDING_KEY_MARGIN_SECONDS = 300
# The local note expires this long before the refresh it stands for is due: an event
# seen after the refresh started must ask again.
LOCAL_NOTE_MARGIN_SECONDS = 5
# Stale projects asked for per periodic sweep.
SWEEP_BATCH = 500

# A refresh another process enqueued is trusted this long before the cache is asked
# again: it may start (and drop its key) at any moment, and an event after that must
# ask for the next one. A refresh that finds the flag set again when it is done asks
# itself; an event in this window after a refresh finished leaves the size stale until
# the next event or the periodic sweep asks for it.
OTHER_PROCESS_NOTE_SECONDS = 1

# project id -> True: "this process enqueued its refresh, still pending".
_enqueued_here = TTLCache(
    ttl=lambda: settings.REGISTRY_SIZE_REFRESH_DELAY_SECONDS - LOCAL_NOTE_MARGIN_SECONDS,
    max_entries=10_000,
    max_bytes=2 * 1024 * 1024,
)
# project id -> True: "another process's refresh was pending a moment ago".
_enqueued_elsewhere = TTLCache(ttl=OTHER_PROCESS_NOTE_SECONDS, max_entries=10_000, max_bytes=2 * 1024 * 1024)


PENDING_KEY_PREFIX = "container_registry:size_refresh_pending"


def pending_key(project_id: int) -> str:
    return f"{PENDING_KEY_PREFIX}:{project_id}"


def request_size_refresh(project_ids: Iterable[int]) -> list[int]:
    """Enqueue a delayed size refresh for each project that has none pending. Returns
    the ids enqueued. Never raises: a cache or broker fault is logged, and the stale flag
    keeps the refresh owed (the periodic sweep asks again)."""
    delay = settings.REGISTRY_SIZE_REFRESH_DELAY_SECONDS
    enqueued = []
    for project_id in sorted(set(project_ids)):
        if _enqueued_here.get(project_id) or _enqueued_elsewhere.get(project_id):
            continue
        key = pending_key(project_id)
        try:
            if not cache.add(key, 1, timeout=delay + PENDING_KEY_MARGIN_SECONDS):
                _enqueued_elsewhere.set(project_id, True)
                continue
        except Exception as exc:  # noqa: BLE001 -- any cache backend fault: enqueue anyway, a second refresh is harmless
            logger.warning("size refresh: cache unavailable for project %s: %s", project_id, exc)
        try:
            registry_size_refresh_requested.send(sender=None, project_id=project_id, countdown=delay)
        except Exception as exc:  # noqa: BLE001 -- any broker fault; the receiver must not fail on it
            logger.warning("size refresh of project %s not enqueued: %s", project_id, exc)
            _forget_pending(key)
            continue
        _enqueued_here.set(project_id, True)
        enqueued.append(project_id)
    return enqueued


def _forget_pending(key: str) -> None:
    try:
        cache.delete(key)
    except Exception as exc:  # noqa: BLE001 -- the key then expires by itself
        logger.warning("size refresh: could not drop pending key %s: %s", key, exc)


def project_registry_size(project_id: int, *, client: RegistryClient | None = None) -> int:
    """Bytes of every blob the tags of the project's repositories reach, each once."""
    paths = [
        repository.path
        for repository in ContainerRepository.objects.select_related("project", "project__namespace")
        .filter(project_id=project_id)
        .order_by("name")
    ]
    return sum(image_blobs(paths, client=client).values()) if paths else 0


def refresh_registry_size(*, project_id: int, client: RegistryClient | None = None) -> int | None:
    """Measure and store one project's registry size. Returns it, or None when the
    project is gone or being deleted. Raises the registry client's errors (the stale
    flag is set again, so the refresh stays owed)."""
    _forget_pending(pending_key(project_id))
    if not Project.objects.filter(pk=project_id, pending_delete=False).exists():
        return None
    # Cleared before measuring: an event during the measurement sets it again.
    ProjectRegistryStatistics.objects.filter(project_id=project_id).update(stale=False)
    try:
        size = project_registry_size(project_id, client=client)
    except Exception:
        ProjectRegistryStatistics.objects.filter(project_id=project_id).update(stale=True)
        raise
    store_registry_size(project_id=project_id, size=size, mark_fresh=False)
    # An event during the measurement set the flag again, and a process that saw this
    # refresh pending a moment before may not have asked for the next: ask now.
    if ProjectRegistryStatistics.objects.filter(project_id=project_id, stale=True).exists():
        request_size_refresh([project_id])
    return size


def refresh_stale_sizes(*, limit: int = SWEEP_BATCH) -> list[int]:
    """Ask for a refresh of (at most ``limit``) projects whose size is stale and has no
    refresh pending. Returns the ids enqueued."""
    stale = ProjectRegistryStatistics.objects.filter(stale=True, project__pending_delete=False).order_by(
        F("refreshed_at").asc(nulls_first=True), "project_id"
    )
    return request_size_refresh(stale.values_list("project_id", flat=True)[:limit])


def registry_size(project: Project) -> int:
    """The project's stored registry size (0 before the first measurement)."""
    row = ProjectRegistryStatistics.objects.filter(project=project).only("container_registry_size").first()
    return row.container_registry_size if row is not None else 0


__all__ = [
    "project_registry_size",
    "refresh_registry_size",
    "refresh_stale_sizes",
    "registry_size",
    "request_size_refresh",
]
