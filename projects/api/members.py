"""``/projects/:id/members`` and ``/groups/:id/members`` (direct and ``all``)."""

from __future__ import annotations

from rest_framework.response import Response

from gitlab_core.api.views import ApiView
from gitlab_core.errors import forbidden, invalid_params, not_found
from gitlab_core.models import User
from projects import entities, permissions, selectors, services
from projects.models import AccessLevel, Namespace, Project


class _MemberView(ApiView):
    """Shared by the project and group routes; ``source`` says which one."""

    source: str = "projects"

    def find_source(self, raw_id: str) -> Project | Namespace:
        if self.source == "projects":
            return selectors.find_project(self.user, self.decode_id(raw_id))
        return selectors.find_group(self.user, self.decode_id(raw_id))

    def readable_source(self, raw_id: str) -> Project | Namespace:
        source = self.find_source(raw_id)
        ability = permissions.READ_MEMBERS if self.source == "projects" else permissions.READ_GROUP_MEMBERS
        if not permissions.can(self.user, ability, source):
            raise forbidden()
        return source

    def may_admin(self, source: Project | Namespace) -> bool:
        ability = permissions.ADMIN_PROJECT_MEMBER if self.source == "projects" else permissions.ADMIN_GROUP_MEMBER
        return permissions.can(self.user, ability, source)

    def list_filters(self) -> dict:
        params = self.params()
        query = params.str("query", max_length=255)
        user_ids = params.array("user_ids") or []
        if not all(v.isascii() and v.isdigit() and int(v) < 2**63 for v in user_ids):
            params.errors.append("user_ids is invalid")
        params.check()
        return {"query": query, "user_ids": [int(v) for v in user_ids]}

    def access_level(self, params, *, required: bool = True) -> int | None:
        level = params.int("access_level", required=required, maximum=100)
        if level is not None and level not in AccessLevel.values:
            params.errors.append("access_level does not have a valid value")
        return level


class MembersView(_MemberView):
    def get(self, request, source_id: str):
        source = self.readable_source(source_id)
        members = selectors.direct_members(source, **self.list_filters())
        return self.paginated(members, lambda row: entities.member(row, request))

    def post(self, request, source_id: str):
        actor = self.require_user()
        source = self.readable_source(source_id)
        if not self.may_admin(source):
            raise forbidden()
        params = self.params()
        user_id = params.int("user_id", minimum=1)
        username = params.str("username", max_length=255)
        level = self.access_level(params)
        expires_at = params.date("expires_at")
        params.check()
        if (user_id is None) == (username is None):
            raise invalid_params("user_id, username are missing, exactly one parameter must be provided")
        user = (
            User.objects.filter(pk=user_id).first()
            if user_id is not None
            else User.objects.filter(username__iexact=username).first()
        )
        if user is None:
            raise not_found("User")
        row = services.add_member(source=source, actor=actor, user=user, access_level=level, expires_at=expires_at)
        return Response(entities.member(row, request), status=201)


class AllMembersView(_MemberView):
    def get(self, request, source_id: str):
        source = self.readable_source(source_id)
        members = selectors.all_members(source, **self.list_filters())
        return self.paginated(members, lambda row: entities.member(row, request))


class MemberView(_MemberView):
    def get(self, request, source_id: str, user_id: str):
        source = self.readable_source(source_id)
        return Response(entities.member(selectors.find_direct_member(source, user_id), request))

    def put(self, request, source_id: str, user_id: str):
        actor = self.require_user()
        source = self.readable_source(source_id)
        if not self.may_admin(source):
            raise forbidden()
        member = selectors.find_direct_member(source, user_id)
        params = self.params()
        level = self.access_level(params)
        expires_at = params.date("expires_at")
        params.check()
        member = services.update_member(
            member=member,
            actor=actor,
            access_level=level,
            changes_expiry=params.has("expires_at"),
            expires_at=expires_at,
        )
        return Response(entities.member(member, request))

    def delete(self, request, source_id: str, user_id: str):
        actor = self.require_user()
        source = self.readable_source(source_id)
        member = selectors.find_direct_member(source, user_id)
        # Any member may leave; removing someone else needs the admin ability.
        if member.user_id != actor.pk and not self.may_admin(source):
            raise forbidden()
        services.remove_member(member=member, actor=actor)
        return Response(status=204)
