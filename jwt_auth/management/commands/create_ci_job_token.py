"""``manage.py create_ci_job_token --project FULL_PATH [--user USERNAME]``.

Registers a running CI job and prints only its token (the CI passes it to the job as
the registry password for login ``gitlab-ci-token``). ``--finish TOKEN_OR_ID`` marks a
job finished instead, after which its token stops working.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from jwt_auth.ci_jobs import FINISHED_STATUSES, CiJobError, create_ci_job, find_project, find_user, finish_ci_job


class Command(BaseCommand):
    help = "Register a running CI job and print its registry token, or finish a job (--finish)."

    def add_arguments(self, parser):
        parser.add_argument("--project", help="full path of the job's project, e.g. group/project")
        parser.add_argument("--user", help="username the job acts as (optional)")
        parser.add_argument("--finish", metavar="TOKEN_OR_ID", help="mark this job finished; its token stops working")
        parser.add_argument("--status", default="success", choices=FINISHED_STATUSES, help="final status with --finish")

    def handle(self, *args, **options):
        try:
            if options["finish"]:
                job = finish_ci_job(token_or_id=options["finish"], status=options["status"])
                self.stderr.write(f"CI job {job.pk} is {job.status}")
                return
            if not options["project"]:
                raise CommandError("--project is required (or --finish TOKEN_OR_ID)")
            project = find_project(options["project"])
            user = find_user(options["user"]) if options["user"] else None
            job, secret = create_ci_job(project=project, user=user)
        except CiJobError as exc:
            raise CommandError(str(exc))
        self.stdout.write(secret)
