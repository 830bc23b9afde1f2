"""Celery task that delivers one container registry event to one hook, with retries."""

from __future__ import annotations

import logging

from celery.contrib.django.task import DjangoTask
from django.conf import settings
from django.db import transaction
from django.dispatch import receiver

from gitlab_core.celery import app
from projects import webhooks
from projects.signals import webhook_delivery_requested

__all__ = ["deliver_webhook"]

logger = logging.getLogger(__name__)


@app.task(name="projects.deliver_webhook", base=DjangoTask, acks_late=True)
def deliver_webhook(hook_id: int, payload: dict, idempotency_key: str, attempt: int = 1) -> str:
    """Post the event; a failed attempt is tried again after each of
    ``WEBHOOK_RETRY_DELAYS`` while the hook takes deliveries. Returns the outcome."""
    delivery = webhooks.deliver(hook_id, payload, idempotency_key, attempt=attempt)
    delays = settings.WEBHOOK_RETRY_DELAYS
    if delivery.outcome == "failed" and delivery.retry and attempt <= len(delays):
        deliver_webhook.apply_async(
            args=[hook_id, payload, idempotency_key, attempt + 1], countdown=delays[attempt - 1]
        )
        return "retrying"
    return delivery.outcome


@receiver(webhook_delivery_requested, dispatch_uid="workers.enqueue_webhook_delivery")
def enqueue_webhook_delivery(sender, *, hook_id: int, payload: dict, idempotency_key: str, **kwargs) -> None:
    """Enqueue once the transaction commits. A broker that is down loses this delivery
    (logged with its key), never the change that caused it: the token request, the
    event or the deletion goes on."""

    def send() -> None:
        try:
            deliver_webhook.apply_async(args=[hook_id, payload, idempotency_key], retry=False)
        except Exception as exc:  # noqa: BLE001 (kombu's and redis's errors alike: the broker is down)
            logger.error(
                "webhook delivery not enqueued, broker unavailable",
                extra={"hook_id": hook_id, "idempotency_key": idempotency_key, "error": exc.__class__.__name__},
            )

    transaction.on_commit(send)
