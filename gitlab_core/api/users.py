"""``/user``, ``/users`` and the admin's ``/users/:id/personal_access_tokens``."""

from __future__ import annotations

from rest_framework.response import Response

from gitlab_core import selectors, services
from gitlab_core.api import entities
from gitlab_core.api.views import ApiView
from gitlab_core.errors import forbidden, invalid_params, not_found
from gitlab_core.models import User

MAX_EMAIL_LENGTH = 255
MAX_TEXT_LENGTH = 255


def _get_user(raw_id: str) -> User:
    user_id = ApiView.int_id(raw_id)
    user = User.objects.select_related("personal_namespace").filter(pk=user_id).first() if user_id else None
    if user is None:
        raise not_found("User")
    return user


class CurrentUserView(ApiView):
    allow_read_user = True

    def get(self, request):
        user = self.require_user()
        return Response(entities.user_for(user, user, request))


class UsersView(ApiView):
    allow_read_user = True

    def get(self, request):
        viewer = self.require_user()
        params = self.params()
        filters = {
            "username": params.str("username", max_length=MAX_TEXT_LENGTH),
            "search": params.str("search", max_length=MAX_TEXT_LENGTH),
            "active": params.bool("active"),
            "blocked": params.bool("blocked"),
            "external": params.bool("external"),
            "order_by": params.choice("order_by", selectors.USER_ORDER_FIELDS),
            "sort": params.choice("sort", ("asc", "desc")),
        }
        params.check()
        users = selectors.list_users(viewer=viewer, **filters)
        return self.paginated(users, lambda user: entities.user_for(viewer, user, request))

    def post(self, request):
        viewer = self.require_user()
        if not viewer.is_admin:
            raise forbidden()
        params = self.params()
        email = params.str("email", required=True, max_length=MAX_EMAIL_LENGTH)
        username = params.str("username", required=True, max_length=MAX_TEXT_LENGTH)
        name = params.str("name", required=True, max_length=MAX_TEXT_LENGTH)
        password = params.str("password", max_length=services.MAX_PASSWORD_LENGTH * 8)
        reset_password = params.bool("reset_password", default=False)
        force_random = params.bool("force_random_password", default=False)
        params.bool("skip_confirmation")
        options = {
            "admin": params.bool("admin", default=False),
            "can_create_group": params.bool("can_create_group", default=True),
            "projects_limit": params.int("projects_limit", minimum=0, maximum=2**31 - 1),
            "external": params.bool("external", default=False),
            "note": params.str("note", max_length=MAX_TEXT_LENGTH, nullable=True),
        }
        params.check()
        if password is None and not reset_password and not force_random:
            raise invalid_params(
                "password, reset_password, force_random_password are missing, at least one parameter must be provided"
            )
        user = services.create_user(username=username, email=email, name=name, password=password, **options)
        return Response(entities.user_admin(user, request), status=201)


class UserView(ApiView):
    allow_read_user = True

    def get(self, request, user_id: str):
        viewer = self.require_user()
        return Response(entities.user_for(viewer, _get_user(user_id), request))


class UserPersonalAccessTokensView(ApiView):
    def post(self, request, user_id: str):
        viewer = self.require_user()
        if not viewer.is_admin:
            raise forbidden()
        user = _get_user(user_id)
        params = self.params()
        name = params.str("name", required=True, max_length=MAX_TEXT_LENGTH)
        scopes = params.array("scopes", required=True)
        expires_at = params.date("expires_at")
        description = params.str("description", max_length=MAX_TEXT_LENGTH * 4, nullable=True)
        params.check()
        token, secret = services.create_personal_access_token(
            user=user, name=name, scopes=scopes, expires_at=expires_at, description=description
        )
        return Response(entities.personal_access_token(token, secret), status=201)
