"""Tag cleanup runs: list a repository's tags, read their creation times (through the
cache of policy runs), decide with ``container_registry.cleanup_rules``, delete through
the registry client, and report what happened. Also the dry run and the API's bulk
deletion on behalf of a user.

Limits, from ``ApplicationSettings``:

* ``container_registry_cleanup_tags_service_max_list_size`` (0 = none): a run deletes
  at most this many tags. GitLab truncates the candidate list to a random sample of
  ``max_list_size + keep_n`` before reading creation times, which makes a run's outcome
  unpredictable and applies ``keep_n`` to the sample only. We decide over every
  candidate (so ``keep_n`` and the dry run are exact) and delete the oldest
  ``max_list_size`` of the tags to delete; the run then ends ``unfinished`` and the next
  run continues with the oldest that remain. Each tag's creation time is still read
  once per cleanup (a manifest and a config read, in parallel): with caching on, a run
  cut short by a limit hands the dates it read to the next run of the same cleanup
  (``tag_cache.set_run_dates``), which reads from the registry only the tags it has not
  seen. Re-reading every waiting tag in every run grew with the square of the tag count
  (bench/cleanup/rounds.py; figures in docs/performance.md). The dates are carried, not
  the decisions: each run lists the tags and decides again, so a tag pushed or deleted
  meanwhile is decided on what the repository holds, and any push to the repository
  since the dates were read makes the next run read them afresh.
* ``container_registry_delete_tags_service_timeout`` (seconds, 0 = none): deletion stops
  at the first batch boundary after the budget is spent; the run ends ``unfinished``.
  Within a run the oldest tags are deleted first, so a cut-short run removed the
  oldest ones.
* ``container_registry_expiration_policies_caching``: policy runs carry their dates from
  run to run of one cleanup (above), and with ``older_than`` the finishing run
  remembers the creation time of the tags it keeps for as long as that decision holds
  (older_than - age), as GitLab does, so later cleanups skip the registry reads of those
  tags.

Tags are deleted with the registry client's dummy-manifest recipe, so kept tags that
share a digest with a deleted one survive.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.db import connections
from django.utils import timezone

from container_registry import tag_cache
from container_registry.cleanup_rules import (
    Brake,
    CleanupRules,
    CompiledRules,
    TagDecision,
    decide_by_age,
    deletion_order,
    filter_names,
    kept_until,
    limit_deletions,
)
from container_registry.errors import RegistryError, RegistryNotFound, TagsNotDeleted
from container_registry.models import ContainerRepository
from gitlab_core import metrics
from gitlab_core.models import ApplicationSettings, User
from projects import permissions, webhooks

logger = logging.getLogger(__name__)

# Why a run stopped (ContainerRepository.last_cleanup_stop_reason).
STOP_FINISHED = "finished"
STOP_TAGS_LIMIT = "tags_limit"
STOP_TIME_BUDGET = "time_budget"
STOP_REGISTRY_ERROR = "registry_error"
STOP_INVALID_POLICY = "invalid_policy"
STOP_POLICY_DISABLED = "policy_disabled"
STOP_NEXT_RUN_SOON = "next_run_soon"
STOP_STALE = "stale"
STOP_HELD = "held"
LIMIT_REASONS = frozenset({STOP_TAGS_LIMIT, STOP_TIME_BUDGET})

# Tags re-pointed and removed per registry round (one HEAD + one DELETE per batch on top
# of one PUT per tag), and how often the time budget is checked. As large as the default
# per-run maximum: such a run then costs one DELETE by digest (see below), not two.
DELETE_BATCH_SIZE = 200
# Batches grow so that a run makes at most this many rounds: distribution 2.8 answers a
# DELETE by digest by reading the link of every tag in the repository, so fixed batches
# cost O(tags^2) link reads (bench/cleanup: 13 s of a 68 s run over 10,000 tags).
MAX_DELETE_ROUNDS = 20
# Creation times are read in parallel: each costs a manifest read, plus a config-blob read
# for an image the client has not seen yet.
CREATED_AT_READERS = 8


@dataclass
class CleanupResult:
    status: str  # "finished" | "unfinished" | "held"
    stop_reason: str
    deleted: list[str] = field(default_factory=list)
    original_size: int = 0
    candidates_size: int = 0
    examined_size: int = 0
    before_delete_size: int = 0
    cached_tags_count: int = 0
    error: RegistryError | None = None
    decisions: list[TagDecision] = field(default_factory=list)
    # The run got as far as deciding every tag (and, with a brake, was not held).
    decided: bool = False

    @property
    def held(self) -> bool:
        return self.status == "held"

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    @property
    def deleted_size(self) -> int:
        return len(self.deleted)

    def log_fields(self) -> dict[str, Any]:
        return {
            "cleanup_status": self.status,
            "stop_reason": self.stop_reason,
            "original_size": self.original_size,
            "candidates_size": self.candidates_size,
            "examined_size": self.examined_size,
            "before_delete_size": self.before_delete_size,
            "deleted_size": self.deleted_size,
            "cached_tags_count": self.cached_tags_count,
        }


ProgressCallback = Callable[[int, int], None]


def _client(client):
    if client is not None:
        return client
    from container_registry.client import get_client

    return get_client()


def _list_tags(client, path: str, limit: int | None = None) -> list[str]:
    try:
        return sorted(client.list_tags(path, limit=limit))
    except RegistryNotFound:
        return []


def read_created_at(client, path: str, names: list[str]) -> dict[str, dt.datetime | None]:
    """Creation times of ``names`` (None when unknown or the tag vanished), read in
    parallel. Raises the first ``RegistryError``."""

    def read(name: str) -> dt.datetime | None:
        try:
            return client.tag_created_at(path, name)
        finally:
            # A reader thread may have touched the database (token lifetime setting).
            connections.close_all()

    if len(names) <= 1:
        return {name: client.tag_created_at(path, name) for name in names}
    with ThreadPoolExecutor(max_workers=min(CREATED_AT_READERS, len(names))) as pool:
        return dict(zip(names, pool.map(read, names), strict=True))


def _created_at(
    *,
    client,
    repository: ContainerRepository,
    names: list[str],
    use_cache: bool,
    carried: Mapping[str, dt.datetime | None] | None = None,
) -> tuple[dict[str, dt.datetime | None], int]:
    """Creation times of ``names``: from ``carried`` (read earlier in this cleanup), then
    the tag cache (``use_cache``), then the registry. Also returns how many were known."""
    known: dict[str, dt.datetime | None] = {n: carried[n] for n in names if n in carried} if carried else {}
    rest = [name for name in names if name not in known]
    if use_cache:
        known.update(tag_cache.get_many(repository.pk, rest))
    missing = [name for name in rest if name not in known]
    return {**known, **read_created_at(client, repository.path, missing)}, len(known)


def _push_count(repository: ContainerRepository) -> int | None:
    return ContainerRepository.objects.filter(pk=repository.pk).values_list("push_count", flat=True).first()


def _remember_kept(
    repository: ContainerRepository, decisions: list[TagDecision], compiled: CompiledRules, *, now: dt.datetime
) -> None:
    tag_cache.remember(repository.pk, kept_until(decisions, compiled, now=now))


def _carry_dates(
    repository: ContainerRepository,
    created: Mapping[str, dt.datetime | None],
    *,
    gone: list[str],
    push_count: int,
) -> None:
    """Hand the dates this run read to the next run of the same cleanup (not those of
    the tags it deletes)."""
    deleted = set(gone)
    tag_cache.set_run_dates(
        repository.pk, {n: c for n, c in created.items() if n not in deleted}, push_count=push_count
    )


def _delete(
    *,
    client,
    path: str,
    names: list[str],
    deleted: list[str],
    budget: int,
    clock: Callable[[], float],
    progress: ProgressCallback | None,
) -> bool:
    """Delete in batches, appending to ``deleted`` as they go (so a fault mid-run still
    reports what went before it). True when the time budget stopped it."""
    started = clock()
    batch = max(DELETE_BATCH_SIZE, -(-len(names) // MAX_DELETE_ROUNDS))
    for offset in range(0, len(names), batch):
        if budget and clock() - started > budget:
            return True
        deleted.extend(client.delete_tags(path, names[offset : offset + batch]))
        if progress is not None:
            progress(len(deleted), len(names))
    return False


def cleanup_tags(
    *,
    repository: ContainerRepository,
    rules: CleanupRules,
    policy_run: bool,
    client=None,
    now: dt.datetime | None = None,
    clock: Callable[[], float] = time.monotonic,
    progress: ProgressCallback | None = None,
    actor: User | None = None,
    brake: Brake | None = None,
) -> CleanupResult:
    """Delete the tags of ``repository`` that ``rules`` select, within the limits.

    ``policy_run`` enables the creation-time cache (GitLab caches for policies only).
    Registry faults do not raise: the result is ``unfinished`` with ``stop_reason``
    ``registry_error`` and ``error`` set, and ``deleted`` lists what went before the fault.
    A run that deleted none of the tags it tried ends so too (``TagsNotDeleted``).
    The project's hooks hear of every deleted tag, from ``actor`` (None: the cleanup
    policy). With a ``brake`` that trips on what the rules select, nothing is deleted:
    the result is ``held``, its ``decisions`` the tags it would delete, oldest first.
    Raises ``InvalidCleanupRules`` for bad rules.
    """
    compiled = rules.compile()
    app_settings = ApplicationSettings.current()
    client = _client(client)
    now = now or timezone.now()
    result = CleanupResult(status="unfinished", stop_reason=STOP_REGISTRY_ERROR)
    try:
        _run(result, repository, compiled, app_settings, client, now, clock, progress, policy_run, brake)
    except RegistryError as exc:
        result.status, result.stop_reason, result.error = "unfinished", STOP_REGISTRY_ERROR, exc
        logger.warning("cleanup of %s stopped by a registry error: %s", repository.path, exc)
    metrics.CLEANUP_RUNS.labels("registry_error" if result.error else result.status).inc()
    metrics.CLEANUP_TAGS_DELETED.inc(result.deleted_size)
    webhooks.request_deliveries(
        repository.project_id,
        [webhooks.RegistryChange("delete", repository.path, tag=name, actor=actor) for name in result.deleted],
    )
    return result


def _run(result, repository, compiled, app_settings, client, now, clock, progress, policy_run, brake) -> None:
    names = _list_tags(client, repository.path)
    result.original_size = len(names)
    candidates, _kept = filter_names(names, compiled)
    result.candidates_size = result.examined_size = len(candidates)
    caching = policy_run and app_settings.container_registry_expiration_policies_caching
    # Read before the registry: a push counted after this makes the carried dates void.
    push_count = _push_count(repository) if caching and compiled.needs_created_at else None
    if compiled.needs_created_at:
        carried = tag_cache.get_run_dates(repository.pk, push_count=push_count) if push_count is not None else {}
        created, result.cached_tags_count = _created_at(
            client=client,
            repository=repository,
            names=candidates,
            use_cache=caching and bool(compiled.older_than),
            carried=carried,
        )
    else:
        created = dict.fromkeys(candidates)
    decisions = decide_by_age(created, compiled, now=now)
    ordered = deletion_order(decisions)
    to_delete = [d.name for d in ordered]
    result.before_delete_size = len(to_delete)
    if brake is not None and brake.trips(delete=len(to_delete), total=len(names)):
        result.status, result.stop_reason, result.decisions = "held", STOP_HELD, ordered
        return
    result.decided = True
    to_delete, truncated = limit_deletions(
        to_delete, app_settings.container_registry_cleanup_tags_service_max_list_size
    )
    if push_count is not None and truncated:
        # Saved before deleting, so that a fault while deleting does not lose the reads.
        _carry_dates(repository, created, gone=to_delete, push_count=push_count)
    timed_out = _delete(
        client=client,
        path=repository.path,
        names=to_delete,
        deleted=result.deleted,
        budget=app_settings.container_registry_delete_tags_service_timeout,
        clock=clock,
        progress=progress,
    )
    if to_delete and not result.deleted:
        # Every tag tried was refused (a PUT the registry rejects is skipped): GitLab's
        # delete service then answers an error, and the run ends unfinished with it.
        raise TagsNotDeleted(repository.path, to_delete)
    if push_count is not None and timed_out and not truncated:
        _carry_dates(repository, created, gone=result.deleted, push_count=push_count)
    elif push_count is not None and not timed_out and not truncated:
        tag_cache.forget_run_dates(repository.pk)
    if caching and not timed_out and not truncated:
        # The finishing run decided every tag that is left: the kept ones are remembered
        # for later cleanups (earlier runs of this one had the carried dates).
        _remember_kept(repository, decisions, compiled, now=now)
    if timed_out:
        result.status, result.stop_reason = "unfinished", STOP_TIME_BUDGET
    elif truncated:
        result.status, result.stop_reason = "unfinished", STOP_TAGS_LIMIT
    else:
        result.status, result.stop_reason = "finished", STOP_FINISHED


def plan_cleanup(
    *,
    repository: ContainerRepository,
    rules: CleanupRules,
    client=None,
    now: dt.datetime | None = None,
    max_tags: int | None = None,
) -> CleanupResult:
    """The dry run: every tag of ``repository`` with its decision and the rule that made
    it, as a run without limits would decide. Deletes nothing; reads cached creation
    times but writes none. Raises ``InvalidCleanupRules`` and ``RegistryError``
    (``TooManyTags`` when the repository holds more than ``max_tags``)."""
    compiled = rules.compile()
    client = _client(client)
    now = now or timezone.now()
    names = _list_tags(client, repository.path, limit=max_tags)
    candidates, kept = filter_names(names, compiled)
    if compiled.needs_created_at:
        caching = ApplicationSettings.current().container_registry_expiration_policies_caching
        created, cached_count = _created_at(
            client=client, repository=repository, names=candidates, use_cache=caching and bool(compiled.older_than)
        )
    else:
        created, cached_count = dict.fromkeys(candidates), 0
    decisions = sorted([*kept, *decide_by_age(created, compiled, now=now)], key=lambda d: d.name)
    return CleanupResult(
        status="finished",
        stop_reason="dry_run",
        original_size=len(names),
        candidates_size=len(candidates),
        examined_size=len(candidates),
        before_delete_size=sum(1 for d in decisions if d.delete),
        cached_tags_count=cached_count,
        decisions=decisions,
    )


def bulk_delete_for_user(
    *, user_id: int, repository_id: int, params: Mapping[str, Any], client=None
) -> CleanupResult | None:
    """The bulk tag deletion of the API, run on behalf of ``user_id``.

    None (nothing done) when the user or repository is gone, or the user may no longer
    delete images of the project (GitLab re-checks ``destroy_container_image``). The
    ``latest`` tag is never deleted. Registry faults are in the result, not raised.
    """
    user = User.objects.filter(pk=user_id).first()
    repository = ContainerRepository.objects.select_related("project").filter(pk=repository_id).first()
    if user is None or repository is None or repository.status is not None:
        return None
    if not permissions.can(user, permissions.DESTROY_CONTAINER_IMAGE, repository.project):
        logger.warning("bulk tag deletion dropped: access denied", extra={"container_repository_id": repository_id})
        return None
    result = cleanup_tags(
        repository=repository, rules=CleanupRules.from_params(params), policy_run=False, client=client, actor=user
    )
    logger.info(
        "bulk tag deletion",
        extra={"container_repository_id": repository_id, "user_id": user_id, **result.log_fields()},
    )
    return result
