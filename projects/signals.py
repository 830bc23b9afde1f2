"""Signals other apps listen to, so that ``projects`` never imports them."""

from __future__ import annotations

from django.dispatch import Signal

# Sent with ``project=`` after DELETE /projects/:id marked the project pending deletion,
# before the row goes: the registry app schedules deletion of its repositories.
project_deletion_requested = Signal()

# Sent with ``project=`` and ``attributes=`` (the request's
# ``container_expiration_policy_attributes``, a dict) inside the transaction in which the
# project API creates or edits a project: the registry app validates and saves the
# project's cleanup policy. Its ``ServiceError`` rolls the project write back.
cleanup_policy_submitted = Signal()

# Sent with ``group=`` and ``attributes=`` (the request's
# ``container_expiration_policy_attributes``: a dict, or None to remove the group's own
# default) when ``PUT /groups/:id`` changes the default cleanup policy of the group's new
# projects: the registry app validates, saves and audits it. Its ``ServiceError`` answers.
group_cleanup_policy_submitted = Signal()

# Sent with ``hook_id=``, ``payload=`` (a dict) and ``idempotency_key=`` for each hook a
# container registry event goes to (``projects.webhooks``): ``workers`` enqueues the
# delivery once the transaction commits.
webhook_delivery_requested = Signal()
