"""The base class of every ``/api/v4`` view: authentication, token scopes, parameters.

Scope rules (GitLab's): ``api`` may do everything; ``read_api`` only GET/HEAD;
``read_user`` only views that set ``allow_read_user``; registry and repository scopes
have no REST access. Views call ``self.require_user()`` when anonymous callers are not
allowed. A CI job token is accepted only by views that set ``allow_job_token`` (the
registry endpoints of the job's own project). ``Sudo`` (header or parameter): an
administrator's token with the ``sudo`` scope acts as the named user (id or username).
"""

from __future__ import annotations

from urllib.parse import unquote

from rest_framework.exceptions import ParseError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gitlab_core.api.authentication import JobTokenAuth
from gitlab_core.api.errors import insufficient_scope
from gitlab_core.api.pagination import paginate
from gitlab_core.api.params import Params
from gitlab_core.errors import ServiceError, forbidden, unauthorized
from gitlab_core.models import PersonalAccessToken, User
from gitlab_core.text import clean_text, parse_int_id

READ_METHODS = {"GET", "HEAD", "OPTIONS"}


class SafeJSONParser(JSONParser):
    """JSON parser that answers 400 for pathologically nested bodies instead of a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON nested too deeply")


class ApiView(APIView):
    parser_classes = [SafeJSONParser, FormParser, MultiPartParser]
    allow_read_user = False
    allow_self_rotate = False
    allow_job_token = False

    def initial(self, request: Request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        token = request.auth
        if isinstance(token, PersonalAccessToken):
            self._check_scopes(request, set(token.scopes))
        if isinstance(token, JobTokenAuth) and not self.allow_job_token:
            raise unauthorized()
        self._sudo(request)

    def _sudo(self, request: Request) -> None:
        """Act as the user the ``Sudo`` header or ``sudo`` parameter names (GitLab's
        checks, in its order); never silently as the caller."""
        identifier = request.META.get("HTTP_SUDO") or request.query_params.get("sudo")
        if not identifier and request.method not in READ_METHODS and isinstance(request.data, dict):
            identifier = request.data.get("sudo")
        if identifier in (None, ""):
            return
        if self.user is None:
            raise unauthorized()
        if not self.user.is_admin:
            raise forbidden("403 Forbidden - Must be admin to use sudo")
        if not isinstance(request.auth, PersonalAccessToken):
            raise forbidden("403 Forbidden - Must be authenticated using an OAuth or Personal Access Token to use sudo")
        if "sudo" not in request.auth.scopes:
            raise insufficient_scope("sudo")
        target = _user_by_id_or_username(str(identifier))
        if target is None:
            raise ServiceError(404, {"message": f"404 User with ID or username '{str(identifier)[:255]}' Not Found"})
        request.user = target

    def _check_scopes(self, request: Request, scopes: set[str]) -> None:
        if "api" in scopes:
            return
        if request.method in READ_METHODS and (
            "read_api" in scopes or (self.allow_read_user and "read_user" in scopes)
        ):
            return
        if self.allow_self_rotate and "self_rotate" in scopes:
            return
        raise insufficient_scope()

    # --- helpers for subclasses -------------------------------------------------------
    @property
    def user(self) -> User | None:
        return self.request.user if isinstance(self.request.user, User) else None

    def require_user(self) -> User:
        if self.user is None:
            raise unauthorized()
        return self.user

    def params(self) -> Params:
        return Params(self.request)

    def paginated(self, items, serialize) -> Response:
        page, headers = paginate(self.request, items)
        return Response([serialize(item) for item in page], headers=headers)

    @property
    def token(self) -> PersonalAccessToken | None:
        return self.request.auth if isinstance(self.request.auth, PersonalAccessToken) else None

    @staticmethod
    def decode_id(raw: str) -> str:
        return unquote(raw)

    @property
    def job_token(self) -> JobTokenAuth | None:
        return self.request.auth if isinstance(self.request.auth, JobTokenAuth) else None

    @staticmethod
    def int_id(raw: str) -> int | None:
        """A numeric route id, or None when ``raw`` is not one (the caller answers 404)."""
        return parse_int_id(raw)


def _user_by_id_or_username(identifier: str) -> User | None:
    """The user an id (ASCII digits) or a username (any case) names."""
    if len(identifier) > 255 or not clean_text(identifier):
        return None
    if identifier.isascii() and identifier.isdigit():
        pk = parse_int_id(identifier)
        return User.objects.filter(pk=pk).first() if pk else None
    return User.objects.filter(username__iexact=identifier).first()
