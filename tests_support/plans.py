"""PostgreSQL's generic plans for the statements on a request path, on an instance large
enough that a scan would show: a prepared statement is planned once without its
parameters' values (it cannot see how few paths a JSON parameter holds)."""

from __future__ import annotations

from django.db import connection

from projects.models import Namespace, Project
from tests_support.factories import make_group, make_project

PROJECTS = 3_000


def large_group() -> tuple[Namespace, Project]:
    """A group ``big`` with a project ``big/app`` and ``PROJECTS`` more (``analyse``
    afterwards, once the caller has added its rows)."""
    group = make_group("big")
    template = make_project(group, "app")
    Project.objects.bulk_create(
        Project(
            name=f"p{n}",
            path=f"p{n}",
            full_path=f"big/p{n}",
            full_path_lower=f"big/p{n}",
            namespace=group,
            visibility=template.visibility,
            container_registry_access_level=template.container_registry_access_level,
        )
        for n in range(PROJECTS)
    )
    return group, template


def analyse() -> None:
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def generic_plan(sql: str, params: list) -> str:
    """EXPLAIN ANALYZE of ``sql`` prepared with untyped parameters, as psycopg prepares it,
    under a generic plan."""
    numbered = sql
    for index in range(1, sql.count("%s") + 1):
        numbered = numbered.replace("%s", f"${index}", 1)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE plan_probe AS {numbered}")
        try:
            literals = ", ".join(connection.ops.compose_sql("%s", [p]) for p in params)
            cursor.execute(f"EXPLAIN ANALYZE EXECUTE plan_probe({literals})")
            return "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE plan_probe")
