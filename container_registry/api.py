"""Registry REST endpoints (repositories and tags); the notification receiver is `receiver.py`.

Project endpoints check in GitLab's order: authenticate, resolve the
project (404), ``read_container_image`` (403), validate parameters (400), resolve the
repository within the project (404), the action permission (403), then the tag (404).
"""

from __future__ import annotations

import logging
import re

from rest_framework.response import Response

from container_registry import entities, selectors, services, tag_cache
from container_registry.client import get_client
from container_registry.errors import RegistryError, TooManyTags, TransientRegistryError
from container_registry.maintenance.usage import repository_size
from container_registry.models import ContainerRepository
from gitlab_core.api.views import ApiView
from gitlab_core.errors import (
    ServiceError,
    bad_request,
    forbidden,
    invalid_params,
    method_not_allowed,
    not_found,
    unauthorized,
)
from projects import permissions, protection, webhooks
from projects.models import Project
from projects.selectors import lookup_by_id_or_path

logger = logging.getLogger(__name__)

# Route ids beyond this cannot be rows (64-bit keys) and must not reach the database.
MAX_ID_DIGITS = 18
# Tag names a request may read from the registry, over all the repositories it lists
# (``tags=true`` on a page of 100 repositories included): ten registry pages. Beyond it
# the request is refused rather than held in memory; a tag list is read whole because
# GitLab pages it by offset and counts it (``X-Total``).
MAX_TAGS_PER_REQUEST = 10_000
# The registry's tag grammar: anything else is not a tag there, and is never put in a
# registry URL.
TAG_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
# GitLab's answer when a protection rule refuses a deletion.
PROTECTED_DELETE_MESSAGE = "403 Forbidden - Deleting protected container repository forbidden."


def registry_unavailable(exc: RegistryError) -> ServiceError:
    """The registry failed us: 503 when it may recover by itself, 502 otherwise."""
    logger.warning("container registry request failed: %s", exc)
    if isinstance(exc, TransientRegistryError):
        return ServiceError(503, {"message": "503 Container registry unavailable"})
    return ServiceError(502, {"message": f"502 Container registry error: {exc}"})


def parse_repository_id(raw: str, label: str = "repository_id") -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > MAX_ID_DIGITS:
        raise invalid_params(f"{label} is invalid")
    return int(raw)


# GitLab's answer to a CI job token used on another project's registry endpoints.
JOB_TOKEN_OTHER_PROJECT = (
    "403 Forbidden - This project's CI/CD job token cannot be used to authenticate with the container "
    "registry of a different project."
)


class RegistryApiView(ApiView):
    # A CI job token works on the registry endpoints of its job's own project.
    allow_job_token = True

    def project(self, project_id: str):
        job = self.job_token
        if job is not None:
            found = lookup_by_id_or_path(Project.objects.all(), self.decode_id(project_id))
            if found is None or found.pk != job.project_id:
                raise forbidden(JOB_TOKEN_OTHER_PROJECT)
        return selectors.project_for_api(actor=self.user, raw_id=self.decode_id(project_id))

    def abilities(self, project) -> frozenset[str]:
        return permissions.project_abilities(self.user, project)

    def check_delete_not_protected(self, project, repository: ContainerRepository) -> None:
        """403 when a protection rule keeps this caller from deleting in ``repository``."""
        if protection.DELETE in protection.refused_actions(self.user, project, repository.path):
            raise forbidden(PROTECTED_DELETE_MESSAGE)

    tags_read = 0

    def list_tags(self, repository: ContainerRepository) -> list[str]:
        """The repository's tags, counted against this request's ``MAX_TAGS_PER_REQUEST``
        (400 beyond it)."""
        try:
            names = get_client().list_tags(repository.path, limit=self.tags_left())
        except TooManyTags:
            raise self.too_many_tags()
        except RegistryError as exc:
            raise registry_unavailable(exc)
        self.tags_read += len(names)
        return names

    def tags_left(self) -> int:
        """Tag names this request may still read from the registry."""
        return MAX_TAGS_PER_REQUEST - self.tags_read

    @staticmethod
    def too_many_tags() -> ServiceError:
        return bad_request(
            f"400 Bad request - more than {MAX_TAGS_PER_REQUEST} tags to list in one request: "
            "list fewer repositories per page, or without their tags"
        )


class ProjectRepositoriesView(RegistryApiView):
    """GET /projects/:id/registry/repositories"""

    def get(self, request, project_id: str):
        project = self.project(project_id)
        params = self.params()
        want_tags = params.bool("tags", default=False)
        want_count = params.bool("tags_count", default=False)
        params.check()
        admin = permissions.ADMIN_CONTAINER_IMAGE in self.abilities(project)

        def serialize(repo):
            names = self.list_tags(repo) if want_tags or want_count else None
            return entities.repository(
                repo,
                request=request,
                tags=names if want_tags else None,
                tags_count=len(names) if want_count else None,
                admin=admin,
            )

        return self.paginated(selectors.project_repositories(project=project), serialize)


class ProjectRepositoryView(RegistryApiView):
    """DELETE /projects/:id/registry/repositories/:repository_id"""

    def delete(self, request, project_id: str, repository_id: str):
        project = self.project(project_id)
        repository = selectors.repository_in_project(project=project, repository_id=parse_repository_id(repository_id))
        if permissions.ADMIN_CONTAINER_IMAGE not in self.abilities(project):
            raise forbidden()
        self.check_delete_not_protected(project, repository)
        services.schedule_repository_deletion(repository=repository)
        return Response({"message": "202 Accepted"}, status=202)


class RepositoryTagsView(RegistryApiView):
    """GET .../tags, and DELETE .../tags (bulk, in ``api_cleanup``)."""

    def get(self, request, project_id: str, repository_id: str):
        project = self.project(project_id)
        repository = selectors.repository_in_project(project=project, repository_id=parse_repository_id(repository_id))
        if request.query_params.get("pagination") == "keyset":
            # GitLab pages tags by keyset only through its own registry's API, which a
            # distribution registry does not have: it answers 405 then.
            raise method_not_allowed()
        return self.paginated(self.list_tags(repository), lambda name: entities.tag(repository, name))

    def delete(self, request, project_id: str, repository_id: str):
        from container_registry.api_cleanup import bulk_delete_tags

        project = self.project(project_id)
        # Parameters are validated before the repository is resolved (GitLab's order), so
        # the raw route value is handed over.
        return bulk_delete_tags(view=self, project=project, repository=repository_id)


class RepositoryTagView(RegistryApiView):
    """GET and DELETE .../tags/:tag_name"""

    def _resolve(self, project_id: str, repository_id: str):
        project = self.project(project_id)
        repository = selectors.repository_in_project(project=project, repository_id=parse_repository_id(repository_id))
        return project, repository

    @staticmethod
    def _check_tag_name(tag_name: str) -> None:
        if not TAG_NAME.fullmatch(tag_name):
            raise not_found("Tag")

    def get(self, request, project_id: str, repository_id: str, tag_name: str):
        _project, repository = self._resolve(project_id, repository_id)
        self._check_tag_name(tag_name)
        try:
            details = get_client().tag_details(repository.path, tag_name)
        except RegistryError as exc:
            raise registry_unavailable(exc)
        if details is None:
            raise not_found("Tag")
        return Response(entities.tag_details(repository, details))

    def delete(self, request, project_id: str, repository_id: str, tag_name: str):
        project, repository = self._resolve(project_id, repository_id)
        if permissions.DESTROY_CONTAINER_IMAGE not in self.abilities(project):
            raise forbidden()
        self.check_delete_not_protected(project, repository)
        self._check_tag_name(tag_name)
        client = get_client()
        try:
            digest = client.tag_digest(repository.path, tag_name)
            if digest is None:
                raise not_found("Tag")
            deleted = client.delete_tags(repository.path, [tag_name])
        except RegistryError as exc:
            if exc.status in (400, 403, 405):
                raise bad_request(f"could not delete tags: {tag_name}")
            raise registry_unavailable(exc)
        if tag_name not in deleted:
            raise bad_request(f"could not delete tags: {tag_name}")
        tag_cache.forget(repository.pk, [tag_name])
        services.record_repository_event(repository, "container_repository_tags_deleted", f"Deleted tag {tag_name}")
        webhooks.request_deliveries(
            project.pk,
            [webhooks.RegistryChange("delete", repository.path, tag=tag_name, digest=digest, actor=self.user)],
        )
        return Response(status=200)


class GroupRepositoriesView(RegistryApiView):
    """GET /groups/:id/registry/repositories (``tags``/``tags_count`` are ignored)."""

    allow_job_token = False

    def get(self, request, group_id: str):
        group = selectors.group_for_api(actor=self.user, raw_id=self.decode_id(group_id))
        repositories = selectors.group_repositories(actor=self.user, group=group)
        admin_of: dict[int, bool] = {}

        def serialize(repo):
            if repo.project_id not in admin_of:
                admin_of[repo.project_id] = permissions.can(self.user, permissions.ADMIN_CONTAINER_IMAGE, repo.project)
            return entities.repository(repo, request=request, admin=admin_of[repo.project_id])

        return self.paginated(repositories, serialize)


class RepositoryView(RegistryApiView):
    """GET /registry/repositories/:id"""

    allow_job_token = False

    def get(self, request, repository_id: str):
        if self.user is None:
            raise unauthorized()
        params = self.params()
        want_tags = params.bool("tags", default=False)
        want_count = params.bool("tags_count", default=False)
        want_size = params.bool("size", default=False)
        params.check()
        repository_pk = parse_repository_id(repository_id, "id")
        repository = selectors.repository_by_id(repository_id=repository_pk)
        if repository is None:
            raise not_found()
        abilities = self.abilities(repository.project)
        if permissions.READ_CONTAINER_IMAGE not in abilities:
            raise forbidden()
        names = self.list_tags(repository) if want_tags or want_count else None
        size = None
        if want_size:
            try:
                size = repository_size(repository)
            except RegistryError as exc:
                raise registry_unavailable(exc)
        return Response(
            entities.repository(
                repository,
                request=request,
                tags=names if want_tags else None,
                tags_count=len(names) if want_count else None,
                size=size,
                with_size=want_size,
                admin=permissions.ADMIN_CONTAINER_IMAGE in abilities,
            )
        )
