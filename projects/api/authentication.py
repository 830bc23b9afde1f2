"""CI job tokens on ``/api/v4``: the ``JOB-TOKEN`` header or the ``job_token`` parameter.

A running job authenticates as its user, and ``ApiView`` lets it through only to views
that accept job tokens (the registry endpoints, which also check that the project is the
job's own). An unknown or finished job's token, or a job without a user who may sign
in, is a 401.
"""

from __future__ import annotations

from rest_framework.authentication import BaseAuthentication

from gitlab_core.api.authentication import JobTokenAuth
from gitlab_core.errors import unauthorized
from projects.selectors import find_running_ci_job


def job_token_from_request(request) -> str | None:
    value = request.META.get("HTTP_JOB_TOKEN") or request.query_params.get("job_token")
    return value.strip() if value and value.strip() else None


class JobTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        secret = job_token_from_request(request)
        if secret is None:
            return None
        job = find_running_ci_job(secret)
        if job is None or job.user is None or not job.user.can_log_in:
            raise unauthorized()
        return job.user, JobTokenAuth(job_id=job.pk, project_id=job.project_id)

    def authenticate_header(self, request):
        return 'Bearer realm="GitLab"'
