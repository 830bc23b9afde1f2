"""Bulk tag deletion (``DELETE .../tags``) and the cleanup dry-run endpoints (our extension).

``DELETE /projects/:id/registry/repositories/:repository_id/tags`` validates its
parameters, resolves the repository, needs Maintainer (``admin_container_image``), takes
a one-hour lease per repository (GitLab's exclusive lease; not released when the job
ends) and answers 202; the ``container_registry.cleanup_tags`` task does the work.

``GET /projects/:id/registry/repositories/:repository_id/cleanup_plan`` and
``GET /projects/:id/registry/cleanup_plan`` return, without deleting anything, every tag
with the decision the project's cleanup policy (or the bulk-delete parameters given in
the query) would make and the rule that made it. See ``docs/cleanup-dry-run.md``.

``POST /projects/:id/registry/repositories/:repository_id/cleanup/release`` (Maintainer)
releases a repository that the mass-deletion brake held (``container_registry.brake``)
and answers the repository; 400 when it is not held.
"""

from __future__ import annotations

from django.core.cache import cache
from django.db import transaction
from rest_framework.response import Response

from container_registry import brake, entities, selectors
from container_registry.api import RegistryApiView, parse_repository_id, registry_unavailable
from container_registry.cleanup import CleanupResult, plan_cleanup
from container_registry.cleanup_rules import CleanupRules, InvalidCleanupRules, parse_older_than
from container_registry.errors import RegistryError, TooManyTags
from container_registry.models import ContainerExpirationPolicy, ContainerRepository
from container_registry.regex import validate_regex
from container_registry.services import record_repository_event
from container_registry.signals import tag_cleanup_requested
from gitlab_core.api.format import iso
from gitlab_core.api.params import Params
from gitlab_core.errors import bad_request, forbidden
from gitlab_core.models import ApplicationSettings
from projects import permissions
from projects.models import Project

BULK_DELETE_LEASE_SECONDS = 3600
RATE_LIMITED = (
    "This request has already been made. You can run this at most once an hour for a given container repository"
)
_RULE_PARAMS = ("name_regex_delete", "name_regex", "name_regex_keep", "keep_n", "older_than")


def bulk_delete_lease_key(repository_id: int) -> str:
    return f"container_repository:cleanup_tags:{repository_id}"


def parse_rule_params(params: Params, *, require_delete_regex: bool) -> CleanupRules:
    """The bulk-delete parameters as rules; 400 in GitLab's shape for every problem."""
    if require_delete_regex:
        params.require_one_of("name_regex", "name_regex_delete")
    values = {name: params.str(name, nullable=True) for name in ("name_regex_delete", "name_regex", "name_regex_keep")}
    keep_n = params.int("keep_n", minimum=0, nullable=True)
    older_than = params.str("older_than", nullable=True)
    for name, value in values.items():
        if value and (detail := validate_regex(value)) is not None:
            params.errors.append(f"{name} is an invalid regexp: {detail}")
    try:
        parse_older_than(older_than)
    except ValueError:
        params.errors.append("older_than is invalid")
    params.check()
    return CleanupRules.from_params({**values, "keep_n": keep_n, "older_than": older_than or None})


def _repository(project: Project, repository: ContainerRepository | str | int) -> ContainerRepository:
    if isinstance(repository, ContainerRepository):
        return repository
    return selectors.repository_in_project(project=project, repository_id=parse_repository_id(str(repository)))


def bulk_delete_tags(*, view: RegistryApiView, project: Project, repository: ContainerRepository | str) -> Response:
    """Validate, authorize, take the hourly lease, enqueue the deletion; 202.

    ``repository`` may be the raw route value, so that parameters are checked before the
    repository is looked up (GitLab's order of checks).
    """
    rules = parse_rule_params(view.params(), require_delete_regex=True)
    repository = _repository(project, repository)
    if not permissions.can(view.user, permissions.ADMIN_CONTAINER_IMAGE, project):
        raise forbidden()
    view.check_delete_not_protected(project, repository)
    if not cache.add(bulk_delete_lease_key(repository.pk), "1", timeout=BULK_DELETE_LEASE_SECONDS):
        raise bad_request(RATE_LIMITED)
    params = rules.as_params()
    with transaction.atomic():
        record_repository_event(
            repository,
            "container_repository_tags_bulk_delete_requested",
            "Requested deletion of the tags matching "
            + ", ".join(f"{key}={value}" for key, value in sorted(params.items()) if value is not None),
        )
        tag_cleanup_requested.send(
            sender=ContainerRepository, user_id=view.user.pk, repository_id=repository.pk, params=params
        )
    return Response({"message": "202 Accepted"}, status=202)


# --- Dry run --------------------------------------------------------------------------------


def _rules_entity(rules: CleanupRules, source: str) -> dict:
    return {"source": source, **rules.as_params(), "keep_latest": rules.keep_latest}


def plan_entity(repository: ContainerRepository, result: CleanupResult) -> dict:
    max_list_size = ApplicationSettings.current().container_registry_cleanup_tags_service_max_list_size
    return {
        "repository_id": repository.pk,
        "path": repository.path,
        "summary": {
            "tags": result.original_size,
            "delete": result.before_delete_size,
            "keep": result.original_size - result.before_delete_size,
            "max_examined_per_run": max_list_size or None,
        },
        "tags": [
            {
                "name": d.name,
                "decision": d.decision,
                "rule": d.rule,
                "reason": d.reason,
                "created_at": iso(d.created_at),
            }
            for d in result.decisions
        ],
    }


class CleanupPlanMixin(RegistryApiView):
    def rules_for(self, project: Project) -> tuple[CleanupRules, dict]:
        """The query's bulk-delete parameters if any were given, else the policy's."""
        params = self.params()
        if any(params.has(name) for name in _RULE_PARAMS):
            rules = parse_rule_params(params, require_delete_regex=False)
            return rules, {"rules": _rules_entity(rules, "request")}
        policy, _ = ContainerExpirationPolicy.objects.get_or_create(project=project)
        rules = CleanupRules.from_policy(policy)
        return rules, {
            "rules": _rules_entity(rules, "policy"),
            "policy": {"enabled": policy.enabled, "cadence": policy.cadence, "next_run_at": iso(policy.next_run_at)},
        }

    def authorized_project(self, project_id: str) -> Project:
        project = self.project(project_id)
        if not permissions.can(self.user, permissions.ADMIN_CONTAINER_IMAGE, project):
            raise forbidden()
        return project

    def plan(self, repository: ContainerRepository, rules: CleanupRules) -> dict:
        """The plan of one repository; its tags count against this request's
        tag budget like a tag listing's (400 beyond it)."""
        try:
            result = plan_cleanup(repository=repository, rules=rules, max_tags=self.tags_left())
        except TooManyTags:
            raise self.too_many_tags()
        except InvalidCleanupRules as exc:
            raise bad_request(f"the cleanup policy is not valid: {exc}")
        except RegistryError as exc:
            raise registry_unavailable(exc)
        self.tags_read += result.original_size
        return plan_entity(repository, result)


class RepositoryCleanupPlanView(CleanupPlanMixin):
    """GET /projects/:id/registry/repositories/:repository_id/cleanup_plan"""

    def get(self, request, project_id: str, repository_id: str):
        project = self.authorized_project(project_id)
        rules, meta = self.rules_for(project)
        repository = _repository(project, repository_id)
        return Response({"project_id": project.pk, **meta, **self.plan(repository, rules)})


class ProjectCleanupPlanView(CleanupPlanMixin):
    """GET /projects/:id/registry/cleanup_plan: every repository of the project."""

    def get(self, request, project_id: str):
        project = self.authorized_project(project_id)
        rules, meta = self.rules_for(project)
        plans = [self.plan(repository, rules) for repository in selectors.project_repositories(project=project)]
        return Response({"project_id": project.pk, **meta, "repositories": plans})


class RepositoryCleanupReleaseView(RegistryApiView):
    """POST /projects/:id/registry/repositories/:repository_id/cleanup/release"""

    # A person reviews what the brake held: not a CI job's token.
    allow_job_token = False

    def post(self, request, project_id: str, repository_id: str):
        project = self.project(project_id)
        repository = _repository(project, repository_id)
        if not permissions.can(self.user, permissions.ADMIN_CONTAINER_IMAGE, project):
            raise forbidden()
        repository = brake.release(repository=repository)
        return Response(entities.repository(repository, request=request, admin=True), status=201)
