"""``/groups``: create, list, get by id or full path, subgroups, descendant groups, projects;
``PUT /groups/:id`` for the default cleanup policy of the group's new projects."""

from __future__ import annotations

from django.db import transaction
from rest_framework.response import Response

from gitlab_core.api.views import ApiView
from gitlab_core.errors import forbidden, invalid_params, not_found
from gitlab_core.models import ApplicationSettings
from projects import entities, permissions, selectors, services
from projects.api.projects import POLICY_ATTRIBUTES, ProjectListMixin
from projects.models import AccessLevel, Namespace, Visibility
from projects.signals import group_cleanup_policy_submitted

VISIBILITIES = ("private", "internal", "public")
MAX_LENGTH = 255


class _GroupListMixin(ApiView):
    def list_groups(self, parent: Namespace | None = None, ancestor: Namespace | None = None) -> Response:
        params = self.params()
        filters = {
            "search": params.str("search", max_length=MAX_LENGTH),
            "owned": params.bool("owned"),
            "min_access_level": params.choice("min_access_level", _levels()),
            "top_level_only": params.bool("top_level_only"),
            "skip_groups": params.array("skip_groups"),
            "order_by": params.choice("order_by", selectors.GROUP_ORDER_FIELDS),
            "sort": params.choice("sort", ("asc", "desc")),
        }
        params.bool("all_available")
        skip = filters["skip_groups"] or []
        if not all(str(v).isascii() and str(v).isdigit() and int(v) < 2**63 for v in skip):
            params.errors.append("skip_groups is invalid")
        params.check()
        filters["skip_groups"] = [int(v) for v in skip]
        if filters["min_access_level"] is not None:
            filters["min_access_level"] = int(filters["min_access_level"])
        groups = selectors.list_groups(viewer=self.user, parent=parent, ancestor=ancestor, **filters)
        return self.paginated(groups, lambda group: entities.group(group, self.request))


def _levels() -> tuple:
    # Query strings carry text, JSON bodies numbers: accept both spellings.
    return tuple(level for value in AccessLevel.values for level in (value, str(value)))


class GroupsView(_GroupListMixin):
    def get(self, request):
        return self.list_groups()

    def post(self, request):
        user = self.require_user()
        params = self.params()
        name = params.str("name", required=True, max_length=MAX_LENGTH, allow_blank=False)
        path = params.str("path", required=True, max_length=MAX_LENGTH, allow_blank=False)
        parent_id = params.int("parent_id", nullable=True, minimum=1)
        visibility = params.choice("visibility", VISIBILITIES)
        description = params.str("description", max_length=2000, default="", nullable=True)
        params.check()
        parent = None
        if parent_id is not None:
            parent = Namespace.objects.filter(kind=Namespace.Kind.GROUP, pk=parent_id).first()
            if parent is None or not permissions.can(user, permissions.READ_GROUP, parent):
                raise not_found("Group")
        if not permissions.can_create_group(user, parent):
            raise forbidden()
        if visibility is None:
            visibility = ApplicationSettings.current().default_group_visibility
        group = services.create_group(
            creator=user,
            name=name,
            path=path,
            parent=parent,
            visibility=Visibility.from_name(visibility),
            description=description or "",
        )
        return Response(entities.group(group, request), status=201)


class GroupView(ApiView):
    def get(self, request, group_id: str):
        group = selectors.find_group(self.user, self.decode_id(group_id))
        return Response(entities.group(group, request))

    def put(self, request, group_id: str):
        """Only ``container_expiration_policy_attributes`` (our extension: the default
        cleanup policy of the group's new projects; null removes the group's own) is
        writable here; Owners and administrators."""
        user = self.require_user()
        group = selectors.find_group(user, self.decode_id(group_id))
        if not permissions.can(user, permissions.ADMIN_GROUP, group):
            raise forbidden()
        params = self.params()
        if not params.has(POLICY_ATTRIBUTES):
            raise invalid_params(f"{POLICY_ATTRIBUTES} is missing, at least one parameter must be provided")
        attributes = params.raw(POLICY_ATTRIBUTES)
        if attributes is not None and not isinstance(attributes, dict):
            raise invalid_params(f"{POLICY_ATTRIBUTES} is invalid")
        with transaction.atomic():
            group_cleanup_policy_submitted.send(sender=Namespace, group=group, attributes=attributes)
        group.refresh_from_db()
        return Response(entities.group(group, request))


class SubgroupsView(_GroupListMixin):
    def get(self, request, group_id: str):
        group = selectors.find_group(self.user, self.decode_id(group_id))
        return self.list_groups(parent=group)


class DescendantGroupsView(_GroupListMixin):
    def get(self, request, group_id: str):
        group = selectors.find_group(self.user, self.decode_id(group_id))
        return self.list_groups(ancestor=group)


class GroupProjectsView(ProjectListMixin):
    """The group's projects the caller sees; with ``include_subgroups``, those of its
    subgroups too."""

    def get(self, request, group_id: str):
        group = selectors.find_group(self.user, self.decode_id(group_id))
        params = self.params()
        include_subgroups = params.bool("include_subgroups", default=False)
        params.check()
        namespace_ids = group.self_and_descendant_ids() if include_subgroups else [group.pk]
        return self.list_projects(namespace_ids=namespace_ids)
