"""``/projects``: create, list, get by id or full path, edit, delete."""

from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction
from rest_framework.response import Response

from gitlab_core.api.params import Params, clean_text
from gitlab_core.api.views import ApiView
from gitlab_core.errors import bad_request, forbidden, invalid_params
from gitlab_core.models import ApplicationSettings
from projects import entities, permissions, selectors, services
from projects.models import Namespace, Project, RegistryAccessLevel, Visibility
from projects.signals import cleanup_policy_submitted

# The project API composes two apps: the project itself and its cleanup policy, which
# the container registry app owns and saves on ``cleanup_policy_submitted``. Both writes
# happen in one transaction.

VISIBILITIES = ("private", "internal", "public")
MAX_LENGTH = 255
MAX_DESCRIPTION_LENGTH = 2000
POLICY_ATTRIBUTES = "container_expiration_policy_attributes"
EDITABLE = (
    "name",
    "path",
    "description",
    "visibility",
    "container_registry_access_level",
    "container_registry_enabled",
    POLICY_ATTRIBUTES,
)


def _registry_access_level(params: Params) -> str | None:
    level = params.choice("container_registry_access_level", RegistryAccessLevel.values)
    enabled = params.bool("container_registry_enabled")
    if level is None and enabled is not None:
        # Deprecated boolean: true -> enabled, false -> disabled.
        level = RegistryAccessLevel.ENABLED if enabled else RegistryAccessLevel.DISABLED
    return level


def _policy_attributes(params: Params) -> dict | None:
    if not params.has(POLICY_ATTRIBUTES):
        return None
    value = params.raw(POLICY_ATTRIBUTES)
    if not isinstance(value, dict):
        params.errors.append(f"{POLICY_ATTRIBUTES} is invalid")
        return None
    return value


def _with_policy(qs):
    return qs.select_related("container_expiration_policy")


def _reload(project: Project) -> Project:
    return _with_policy(Project.objects.select_related("namespace", "namespace__parent")).get(pk=project.pk)


def _find_namespace(user, raw) -> Namespace:
    """The namespace ``namespace_id`` names (id or full path), if ``user`` may create in it."""
    if raw is None:
        return services.personal_namespace(user)
    namespace = None
    if isinstance(raw, int) and not isinstance(raw, bool) or isinstance(raw, str) and raw.isascii() and raw.isdigit():
        if 0 < int(raw) < 2**63:
            namespace = Namespace.objects.filter(pk=int(raw)).first()
    elif isinstance(raw, str) and clean_text(raw):
        namespace = Namespace.objects.filter(full_path_lower=raw.lower()).first()
    if namespace is None or not permissions.can_create_project_in(user, namespace):
        raise bad_request({"namespace": ["is not valid"]})
    return namespace


class ProjectListMixin(ApiView):
    def list_projects(self, namespace_ids: list[int] | None = None) -> Response:
        """A page of the projects the caller sees, with ``GET /projects``'s filters
        (``namespace_ids``: only the projects of these namespaces)."""
        params = self.params()
        filters = {
            "search": params.str("search", max_length=MAX_LENGTH),
            "visibility": params.choice("visibility", VISIBILITIES),
            "membership": params.bool("membership"),
            "owned": params.bool("owned"),
            "min_access_level": params.int("min_access_level", minimum=0, maximum=50),
            "order_by": params.choice("order_by", selectors.PROJECT_ORDER_FIELDS),
            "sort": params.choice("sort", ("asc", "desc")),
        }
        simple = params.bool("simple", default=False)
        params.check()
        projects = selectors.list_projects(viewer=self.user, namespace_ids=namespace_ids, **filters)
        request = self.request
        if simple:
            return self.paginated(projects, lambda project: entities.project_simple(project, request))
        return self.paginated(_with_policy(projects), lambda project: entities.project(project, request))


class ProjectsView(ProjectListMixin):
    def get(self, request):
        return self.list_projects()

    def post(self, request):
        user = self.require_user()
        params = self.params()
        params.require_one_of("name", "path")
        name = params.str("name", max_length=MAX_LENGTH)
        path = params.str("path", max_length=MAX_LENGTH)
        raw_namespace = params.raw("namespace_id")
        visibility = params.choice("visibility", VISIBILITIES)
        description = params.str("description", max_length=MAX_DESCRIPTION_LENGTH, nullable=True)
        registry_level = _registry_access_level(params)
        policy = _policy_attributes(params)
        params.check()
        if path is None:
            path = services.slugify_path(name)
        if name is None:
            name = path
        with transaction.atomic():
            namespace = _find_namespace(user, raw_namespace)
            project = services.create_project(
                creator=user,
                namespace=namespace,
                name=name,
                path=path,
                visibility=Visibility.from_name(visibility or ApplicationSettings.current().default_project_visibility),
                description=description,
                container_registry_access_level=registry_level or RegistryAccessLevel.ENABLED,
            )
            if policy is not None:
                cleanup_policy_submitted.send(sender=Project, project=project, attributes=policy)
        return Response(entities.project(_reload(project), request), status=201)


def _registry_size(project: Project) -> int:
    # The container registry app measures and stores it (``container_registry.statistics``);
    # read through the relation it declares, so that this app imports nothing of it.
    try:
        return project.registry_statistics.container_registry_size
    except ObjectDoesNotExist:
        return 0


class ProjectView(ApiView):
    def get(self, request, project_id: str):
        project = selectors.find_project(self.user, self.decode_id(project_id))
        params = self.params()
        with_statistics = params.bool("statistics", default=False)
        params.check()
        data = entities.project(_reload(project), request)
        # As GitLab: only when asked for, and only for Reporter+ (read_statistics).
        if with_statistics and permissions.can(self.user, permissions.READ_STATISTICS, project):
            data["statistics"] = entities.statistics(container_registry_size=_registry_size(project))
        return Response(data)

    def put(self, request, project_id: str):
        user = self.require_user()
        project = selectors.find_project(user, self.decode_id(project_id))
        if not permissions.can(user, permissions.UPDATE_PROJECT, project):
            raise forbidden()
        params = self.params()
        readers = {
            "name": lambda: params.str("name", max_length=MAX_LENGTH),
            "path": lambda: params.str("path", max_length=MAX_LENGTH),
            "description": lambda: params.str("description", max_length=MAX_DESCRIPTION_LENGTH, nullable=True),
            "visibility": lambda: params.choice("visibility", VISIBILITIES),
        }
        changes = {key: read() for key, read in readers.items() if params.has(key)}
        registry_level = _registry_access_level(params)
        if registry_level is not None:
            changes["container_registry_access_level"] = registry_level
        policy = _policy_attributes(params)
        params.check()
        if not any(params.has(key) for key in EDITABLE):
            raise invalid_params(f"{', '.join(EDITABLE)} are missing, at least one parameter must be provided")
        if "visibility" in changes:
            changes["visibility"] = Visibility.from_name(changes["visibility"])
        renames = {
            key for key in ("name", "path", "visibility") if key in changes and changes[key] != getattr(project, key)
        }
        if renames and not permissions.can(user, permissions.CHANGE_NAMESPACE_ATTRIBUTES, project):
            raise forbidden()
        with transaction.atomic():
            project = services.update_project(project=project, changes=changes)
            if policy is not None:
                cleanup_policy_submitted.send(sender=Project, project=project, attributes=policy)
        return Response(entities.project(_reload(project), request))

    def delete(self, request, project_id: str):
        user = self.require_user()
        project = selectors.find_project(user, self.decode_id(project_id))
        if not permissions.can(user, permissions.REMOVE_PROJECT, project):
            raise forbidden()
        services.request_project_deletion(project=project)
        return Response({"message": "202 Accepted"}, status=202)
