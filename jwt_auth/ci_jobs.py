"""Registering CI jobs from an external CI, and finishing them.

A running job's token authenticates to ``/jwt/auth`` as ``gitlab-ci-token``; once the
job is finished the token no longer works. Only the token's digest is stored.
"""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone

from gitlab_core import tokens
from gitlab_core.models import User
from gitlab_core.signals import send_access_changed
from projects.models import CiJob, Project

FINISHED_STATUSES = (CiJob.Status.SUCCESS, CiJob.Status.FAILED, CiJob.Status.CANCELED)


class CiJobError(Exception):
    """An unknown project, user or job."""


def create_ci_job(*, project: Project, user: User | None = None) -> tuple[CiJob, str]:
    """Create a running job for ``project`` (acting as ``user``) and return it with its
    token secret, which is not stored and cannot be shown again."""
    job = CiJob(project=project, user=user, status=CiJob.Status.RUNNING)
    secret = job.set_secret()
    job.save()
    return job, secret


def finish_ci_job(*, token_or_id: str, status: str = CiJob.Status.SUCCESS) -> CiJob:
    """Mark the job identified by its token or its id as finished with ``status``.

    Finishing a finished job changes nothing. Raises ``CiJobError`` for an unknown job
    or a status that is not a finished one.
    """
    if status not in FINISHED_STATUSES:
        raise CiJobError(f"status must be one of {', '.join(FINISHED_STATUSES)}")
    condition = Q(token_digest=tokens.digest(token_or_id))
    if token_or_id.isdigit():
        condition |= Q(pk=int(token_or_id))
    job = CiJob.objects.filter(condition).first()
    if job is None:
        raise CiJobError("no such CI job")
    # Conditional update: a concurrent finish wins once, the second is a no-op.
    CiJob.objects.filter(pk=job.pk, status=CiJob.Status.RUNNING).update(status=status, finished_at=timezone.now())
    send_access_changed(CiJob)
    job.refresh_from_db()
    return job


def find_project(full_path: str) -> Project:
    project = Project.objects.filter(full_path_lower=full_path.strip("/").lower(), pending_delete=False).first()
    if project is None:
        raise CiJobError(f"project {full_path!r} not found")
    return project


def find_user(username: str) -> User:
    user = User.objects.filter(username__iexact=username).first()
    if user is None:
        raise CiJobError(f"user {username!r} not found")
    return user
