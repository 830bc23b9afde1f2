"""Webhooks for container registry events: which hooks fire, what they receive, one
delivery, and GitLab's disabling of failing hooks.

A tag push, a tag deletion (through the API, a cleanup or the registry itself) and a
repository deletion are posted to the hooks of the project and of its groups up to
the top that have ``container_registry_events``. Each hook gets its own Celery task
(``workers.webhooks``), with the event's ``Idempotency-Key`` kept across retries.

Disabling, as GitLab's ``WebHooks::AutoDisabling``: every failed attempt (no answer, a
blocked address, or a status outside 2xx) counts; after ``FAILURE_THRESHOLD`` failures in
a row the hook rests for one minute, doubling with each further failure up to a day;
after ``PERMANENT_FAILURE_LIMIT`` failures in a row it stays disabled until a Maintainer
saves it or a test delivery succeeds. A success clears the count. Deliveries to a
resting hook are skipped, not queued.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import logging
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from gitlab_core import outbound
from gitlab_core.db import fetch_all
from gitlab_core.errors import ServiceError
from gitlab_core.models import ApplicationSettings, User
from gitlab_core.text import clean_text
from projects.models import Namespace, Project, WebHook, WebHookLog
from projects.signals import webhook_delivery_requested

logger = logging.getLogger(__name__)

TRIGGER = "container_registry_events"
EVENT_HEADER = "Container Registry Hook"
FAILURE_THRESHOLD = 3
PERMANENT_FAILURE_LIMIT = 40
INITIAL_BACKOFF = dt.timedelta(minutes=1)
MAX_BACKOFF = dt.timedelta(days=1)
# Deliveries kept per hook for the admin; older ones are removed as new ones come.
MAX_LOGS_PER_HOOK = 100
# Hooks one project or group may have (GitLab's default plan limit).
MAX_HOOKS_PER_PARENT = 100
INTERNAL_ERROR = "internal error"

EXECUTABLE, TEMPORARILY_DISABLED, DISABLED = "executable", "temporarily_disabled", "disabled"


# --- State ------------------------------------------------------------------------------------


def alert_status(hook: WebHook, now: dt.datetime | None = None) -> str:
    now = now or timezone.now()
    if hook.recent_failures <= FAILURE_THRESHOLD:
        return EXECUTABLE
    if hook.disabled_until is None:
        return DISABLED
    return TEMPORARILY_DISABLED if hook.disabled_until >= now else EXECUTABLE


def _after_failure(hook: WebHook, now: dt.datetime) -> None:
    hook.recent_failures = min(hook.recent_failures + 1, PERMANENT_FAILURE_LIMIT + 1)
    if hook.recent_failures > PERMANENT_FAILURE_LIMIT:
        hook.disabled_until = None
    elif hook.recent_failures > FAILURE_THRESHOLD:
        backoff = min(INITIAL_BACKOFF * (2 ** min(hook.backoff_count, 20)), MAX_BACKOFF)
        hook.backoff_count += 1
        hook.disabled_until = now + backoff


def _after_success(hook: WebHook) -> None:
    hook.recent_failures, hook.backoff_count, hook.disabled_until = 0, 0, None


# --- Which hooks, what they receive -------------------------------------------------------------


def hooks_sql(project: str) -> str:
    """The statement whose rows are the ids of the hooks a container registry event of a
    project goes to: the project's own and those of every group above it, with the
    trigger on (a recursive walk up the namespaces), the same on SQLite and PostgreSQL.
    ``project`` is SQL for the project's id (``%s``, or a subquery: the receiver asks
    whether there are any within the statement that counts a push)."""
    return f"""WITH RECURSIVE chain(id) AS (
    SELECT namespace_id FROM projects WHERE id = {project}
    UNION ALL
    SELECT namespaces.parent_id FROM namespaces JOIN chain ON namespaces.id = chain.id
    WHERE namespaces.parent_id IS NOT NULL
)
SELECT web_hooks.id FROM web_hooks
WHERE web_hooks.container_registry_events
  AND (web_hooks.project_id = {project} OR web_hooks.group_id IN (SELECT id FROM chain))
ORDER BY web_hooks.id"""


_HOOKS_SQL = hooks_sql("%s")


def hook_ids_for(project_id: int) -> list[int]:
    """The hooks a container registry event of the project goes to."""
    return [row[0] for row in fetch_all(_HOOKS_SQL, [project_id, project_id])]


def registry_payload(
    *,
    project: Project,
    action: str,
    repository_path: str,
    tag: str | None,
    digest: str | None,
    actor: User | str | None,
    occurred_at: dt.datetime | None = None,
) -> dict:
    """The JSON body: ``object_kind`` ``container_registry``; ``action`` is ``push``,
    ``delete`` (a tag, or a manifest by digest) or ``repository_delete``."""
    if isinstance(actor, User):
        actor_entry = {"type": "user", "id": actor.pk, "username": actor.username, "name": actor.name}
    elif actor:
        actor_entry = {"type": "registry", "name": actor}
    else:
        actor_entry = {"type": "system", "name": "GitLab cleanup"}
    return {
        "object_kind": "container_registry",
        "event_name": f"container_registry_{action}",
        "action": action,
        "project": {
            "id": project.pk,
            "name": project.name,
            "path_with_namespace": project.full_path,
            "visibility_level": project.visibility,
        },
        "repository": {
            "path": repository_path,
            "location": f"{settings.REGISTRY_HOST_PORT}/{repository_path}"
            if getattr(settings, "REGISTRY_HOST_PORT", "")
            else repository_path,
        },
        "tag": tag,
        "digest": digest,
        "actor": actor_entry,
        "created_at": (occurred_at or timezone.now()).astimezone(dt.UTC).isoformat(timespec="seconds"),
    }


@dataclass(frozen=True)
class RegistryChange:
    """One container registry event for hooks. ``key`` (the ``Idempotency-Key``) is the
    registry's event id when the registry reported it, so that a re-sent notification
    keeps it; a fresh one otherwise."""

    action: str
    repository_path: str
    tag: str | None = None
    digest: str | None = None
    actor: User | str | None = None
    key: str = ""
    occurred_at: dt.datetime | None = None


def request_deliveries(project_id: int, changes: list[RegistryChange], *, hook_ids: list[int] | None = None) -> int:
    """Ask for one delivery per (hook, change) once the transaction commits; returns how
    many. Costs one statement when the project has no hooks, none when the caller read
    ``hook_ids`` already (the rows of ``hooks_sql``)."""
    if hook_ids is None:
        hook_ids = hook_ids_for(project_id) if changes else []
    if not hook_ids:
        return 0
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return 0
    for change in changes:
        payload = registry_payload(
            project=project,
            action=change.action,
            repository_path=change.repository_path,
            tag=change.tag,
            digest=change.digest,
            actor=change.actor,
            occurred_at=change.occurred_at,
        )
        key = change.key or str(uuid.uuid4())
        for hook_id in hook_ids:
            webhook_delivery_requested.send(sender=WebHook, hook_id=hook_id, payload=payload, idempotency_key=key)
    return len(hook_ids) * len(changes)


# --- One delivery ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    outcome: str  # "delivered", "failed", "skipped" or "gone"
    status: str = ""
    retry: bool = False


def deliver(hook_id: int, payload: dict, idempotency_key: str, *, attempt: int = 1, force: bool = False) -> Delivery:
    """Post ``payload`` to the hook once, log the attempt, and move its disabling state.
    ``force`` (a test delivery) posts to a resting or disabled hook too. ``retry`` says
    whether a failed attempt may be tried again (the hook still takes deliveries)."""
    hook = WebHook.objects.filter(pk=hook_id).first()
    if hook is None:
        return Delivery("gone")
    if not force and alert_status(hook) != EXECUTABLE:
        logger.info("webhook delivery skipped, hook disabled", extra={"hook_id": hook_id, "attempt": attempt})
        return Delivery("skipped")
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitLab/container-registry",
        "X-Gitlab-Event": EVENT_HEADER,
        "X-Gitlab-Webhook-UUID": str(uuid.uuid4()),
        "X-Gitlab-Event-UUID": idempotency_key,
        "Idempotency-Key": idempotency_key,
    }
    if hook.token:
        headers["X-Gitlab-Token"] = hook.token
    allow_local = ApplicationSettings.current().allow_local_requests_from_web_hooks_and_services
    try:
        response = outbound.post(
            hook.url,
            body,
            headers,
            allow_local=allow_local,
            timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
            verify=hook.enable_ssl_verification,
        )
        status, text, duration = str(response.status), response.body, response.duration
        ok = 200 <= response.status < 300
    except outbound.BlockedUrl as exc:
        status, text, duration, ok = INTERNAL_ERROR, str(exc), 0.0, False
    except (OSError, http.client.HTTPException) as exc:
        status, text, duration, ok = INTERNAL_ERROR, exc.__class__.__name__, 0.0, False
    with transaction.atomic():
        hook = WebHook.objects.select_for_update().filter(pk=hook_id).first()
        if hook is None:
            return Delivery("gone")
        now = timezone.now()
        _after_success(hook) if ok else _after_failure(hook, now)
        hook.save(update_fields=["recent_failures", "backoff_count", "disabled_until"])
        WebHookLog.objects.create(
            hook=hook,
            trigger=TRIGGER,
            idempotency_key=idempotency_key,
            attempt=attempt,
            response_status=status,
            response_body=text if clean_text(text) else "",
            execution_duration=duration,
        )
        _prune_logs(hook)
    extra = {"hook_id": hook_id, "attempt": attempt, "response_status": status, "duration": round(duration, 3)}
    if ok:
        logger.info("webhook delivered", extra=extra)
        return Delivery("delivered", status)
    logger.warning("webhook delivery failed", extra={**extra, "alert_status": alert_status(hook)})
    return Delivery("failed", status, retry=alert_status(hook) == EXECUTABLE)


def _prune_logs(hook: WebHook) -> None:
    beyond = hook.logs.order_by("-id").values_list("id", flat=True)[MAX_LOGS_PER_HOOK : MAX_LOGS_PER_HOOK + 1]
    if beyond:
        hook.logs.filter(id__lte=beyond[0]).delete()


def test_delivery(hook: WebHook, *, user: User) -> Delivery:
    """GitLab's "test" button for our trigger: a sample tag push of the hook's project (or
    of the group's first project), delivered now, even to a disabled hook."""
    project = hook.project or Project.objects.filter(namespace_id=hook.group_id).order_by("id").first()
    if project is None:
        raise ServiceError(422, {"message": "Ensure the group has a project to test the hook with"})
    payload = registry_payload(
        project=project,
        action="push",
        repository_path=project.full_path_lower,
        tag="latest",
        digest="sha256:" + "0" * 64,
        actor=user,
    )
    return deliver(hook.pk, payload, str(uuid.uuid4()), force=True)


# --- Hooks: validation and changes (API and admin) ------------------------------------------------


def check_url(url: str) -> None:
    """422 in GitLab's words when ``url`` may not be a hook's address."""
    allow_local = ApplicationSettings.current().allow_local_requests_from_web_hooks_and_services
    try:
        outbound.check_url(url, allow_local=allow_local)
    except outbound.BlockedUrl as exc:
        raise ServiceError(422, {"message": {"url": [str(exc)]}})


def check_token(token: str) -> None:
    """422 unless ``token`` can travel in a header: printable ASCII, no control character."""
    if token and not all(" " <= char <= "~" for char in token):
        raise ServiceError(422, {"message": {"token": ["must be printable ASCII characters"]}})


@transaction.atomic
def save_hook(hook: WebHook, *, url_changed: bool) -> WebHook:
    """Validate and save; saving a hook clears its disabling state, as in GitLab."""
    if url_changed:
        check_url(hook.url)
    check_token(hook.token)
    if hook.pk is None:
        # The parent's row locked: concurrent creations cannot pass the limit together.
        if hook.project_id:
            Project.objects.select_for_update().filter(pk=hook.project_id).first()
            parent = {"project_id": hook.project_id}
        else:
            Namespace.objects.select_for_update().filter(pk=hook.group_id).first()
            parent = {"group_id": hook.group_id}
        if WebHook.objects.filter(**parent).count() >= MAX_HOOKS_PER_PARENT:
            raise ServiceError(422, {"message": f"A project or group has at most {MAX_HOOKS_PER_PARENT} hooks"})
    _after_success(hook)
    hook.save()
    return hook
