"""Real database faults for tests: a trigger that makes every DELETE of a table fail.

    with refused_deletes("container_repositories"):
        ...  # any DELETE FROM container_repositories raises a DatabaseError

Works on SQLite (``RAISE(ABORT)`` in a ``BEFORE DELETE`` trigger) and PostgreSQL (a
trigger function that raises). Inside a test transaction the trigger goes away with the
rollback too; with ``transaction=True`` it is committed, so other processes (a live
worker) hit it as well, until the block ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import connection

MESSAGE = "row removal refused by a test trigger"


@contextlib.contextmanager
def refused_deletes(table: str) -> Iterator[None]:
    name = f"refuse_delete_{table}"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN RAISE EXCEPTION '{MESSAGE}'; END $$"
            )
            cursor.execute(f"CREATE TRIGGER {name} BEFORE DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()")
        else:
            cursor.execute(
                f"CREATE TRIGGER {name} BEFORE DELETE ON {table} BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
            )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
                cursor.execute(f"DROP FUNCTION IF EXISTS {name}()")
            else:
                cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
