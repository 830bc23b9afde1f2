"""The statements that resolve an image path find their rows by index on a large
instance, under the generic plans PostgreSQL uses for prepared statements (it cannot
see how few paths a JSON parameter holds, and once hashed the whole projects table:
32 ms a request at 50,000 projects). The realm's one statement: jwt_auth's tests."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.utils import timezone

from container_registry.events import _counting_sql
from container_registry.models import ContainerRepository
from gitlab_core.db import _together_sql
from projects.image_paths import candidate_project_paths, padded_candidates
from projects.permissions import _project_statement
from tests_support.plans import analyse, generic_plan, large_group


@pytest.fixture
def large_instance(db):
    if connection.vendor != "postgresql":
        pytest.skip("generic plans are PostgreSQL's")
    _group, template = large_group()
    ContainerRepository.objects.bulk_create(ContainerRepository(project=template, name=f"img{n}") for n in range(500))
    analyse()
    return template


def test_the_access_statement_finds_projects_by_their_path_index(large_instance):
    _loader, sql = _project_statement("postgresql", user_id=None)
    image = "big/app/img7"
    candidates = candidate_project_paths(image)
    entries = [[image, path, candidates, "big"] for path in candidates]
    plan = generic_plan(sql, [json.dumps(entries), None, candidates])
    assert "Seq Scan on projects" not in plan, plan


def test_the_receivers_statement_finds_the_repository_by_project_and_name(large_instance):
    # The push's statements as PostgreSQL runs them: one statement.
    target, statements = _counting_sql(True, "postgresql")
    image = "big/app/img7"
    now = timezone.now()
    record = ["plan-probe-event", "push", image, "latest", None, now]
    params = [image, *padded_candidates(image), now, now, now, *record, True, True]
    plan = generic_plan(_together_sql(target, tuple(statements)), params)
    assert "Seq Scan on projects" not in plan, plan
    assert "Seq Scan on container_repositories" not in plan, plan
