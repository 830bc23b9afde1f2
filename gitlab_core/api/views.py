"""The base class of every ``/api/v4`` view: authentication, token scopes, parameters.

Scope rules (GitLab's): ``api`` may do everything; ``read_api`` only GET/HEAD;
``read_user`` only views that set ``allow_read_user``; registry and repository scopes
have no REST access. Views call ``self.require_user()`` when anonymous callers are not
allowed.
"""

from __future__ import annotations

from urllib.parse import unquote

from rest_framework.exceptions import ParseError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gitlab_core.api.errors import insufficient_scope
from gitlab_core.api.pagination import paginate
from gitlab_core.api.params import Params
from gitlab_core.errors import unauthorized
from gitlab_core.models import PersonalAccessToken, User
from gitlab_core.text import parse_int_id

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

    def initial(self, request: Request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        token = request.auth
        if isinstance(token, PersonalAccessToken):
            self._check_scopes(request, set(token.scopes))

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

    @staticmethod
    def int_id(raw: str) -> int | None:
        """A numeric route id, or None when ``raw`` is not one (the caller answers 404)."""
        return parse_int_id(raw)
