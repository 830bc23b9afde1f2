"""The realm's one statement for a personal access token request (ban check, token,
the requested images' projects with the token's user's levels) finds the token and the
projects by index on a large instance, under the generic plan a prepared statement
gets."""

from __future__ import annotations

import pytest
from django.db import connection

from gitlab_core import token_lookup, tokens
from gitlab_core.db import _side_by_side_sql
from gitlab_core.models import PersonalAccessToken
from jwt_auth import throttle
from projects.image_paths import resolution_statement
from tests_support.factories import make_user
from tests_support.plans import PROJECTS, analyse, generic_plan, large_group


@pytest.mark.django_db
def test_a_token_request_finds_the_token_and_the_projects_by_index(settings):
    if connection.vendor != "postgresql":
        pytest.skip("generic plans are PostgreSQL's")
    settings.AUTH_BAN_ENABLED = True
    large_group()
    user = make_user("big-user")
    PersonalAccessToken.objects.bulk_create(
        PersonalAccessToken(user=user, name=f"t{n}", scopes=["api"], token_digest=tokens.digest(f"glpat-{n}"))
        for n in range(PROJECTS)
    )
    analyse()
    secret = "glpat-7"
    statements = [
        throttle.check_statement(ip="10.0.0.1", login="big-user"),
        token_lookup.lookup_statement(secret),
        resolution_statement(["big/app/img7", "big/p42"], user_id=token_lookup.owner_id_sql(secret)),
    ]
    sql = _side_by_side_sql(tuple(text for text, _params, _width in statements))
    plan = generic_plan(sql, [param for _text, params, _width in statements for param in params])
    assert "on personal_access_tokens" in plan and "on projects" in plan, plan
    assert "Seq Scan on projects" not in plan, plan
    assert "Seq Scan on personal_access_tokens" not in plan, plan
