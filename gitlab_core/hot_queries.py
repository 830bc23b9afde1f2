"""Plain SQL for the few queries that run on every ``/jwt/auth`` request or registry
event (the receiver's one statement writes, in autocommit).

The realm's lookups are simple, but the ORM spent more time compiling them than the
database spent answering, and PostgreSQL spent more time planning them than running
them. Queries run through here are written once as SQL (built from model metadata by
their callers); on PostgreSQL they run as server-side prepared statements, planned once
per connection. Rows come back through the backend's converters, as ORM results do, and
become model instances whose other fields stay deferred (loaded if ever touched).

``HOT_QUERIES_PREPARED`` (default on) switches the prepared statements off, for a
transaction-mode connection pooler that does not support them (PgBouncer < 1.21).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model

_NEVER = 2**31


class RowLoader:
    """Turns a slice of a result row into a model instance with only ``fields`` loaded."""

    def __init__(self, model: type[Model], fields: frozenset[str], alias: str):
        self.model = model
        self._fields = [f for f in model._meta.concrete_fields if f.attname in fields]
        self.names = [f.attname for f in self._fields]
        # "t.id, t.user_id, ...": the select list, in the order from_db expects.
        self.columns = ", ".join(f"{alias}.{f.column}" for f in self._fields)
        self._converters: list[tuple] | None = None

    def __len__(self) -> int:
        return len(self._fields)

    def load(self, values: Sequence) -> Model:
        db = connections[DEFAULT_DB_ALIAS]  # the proxy ``connection`` costs a lookup per use
        if self._converters is None:
            # Only the fields that have converters on this backend (few: JSON, dates on SQLite).
            converters = []
            for index, f in enumerate(self._fields):
                column = f.get_col(self.model._meta.db_table)
                functions = db.ops.get_db_converters(column) + f.get_db_converters(db)
                if functions:
                    converters.append((index, column, functions))
            self._converters = converters
        if self._converters:
            values = list(values)
            for index, column, functions in self._converters:
                for function in functions:
                    values[index] = function(values[index], column, db)
        return self.model.from_db(DEFAULT_DB_ALIAS, self.names, values)


def fetch_all(sql: str, params: Sequence) -> list[tuple]:
    """Rows of a query (``%s`` placeholders) on the default database."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql" or not getattr(settings, "HOT_QUERIES_PREPARED", True):
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    import psycopg

    # What Django's cursor() checks before it hands out a cursor.
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    db.validate_no_broken_transaction()
    raw = db.connection
    if raw.prepare_threshold is None:
        # Django leaves psycopg's statement preparation off (None), which also refuses
        # prepare=True. A threshold that is never reached enables prepare=True without
        # preparing anything else (Django's client-side binding cursors never prepare).
        raw.prepare_threshold = _NEVER
    started = time.monotonic()
    # Django's own cursors bind parameters client-side and so cannot prepare; a
    # server-binding cursor on the same connection shares its transaction and adapters.
    # wrap_database_errors marks the connection unusable on errors, as Django's do.
    with db.wrap_database_errors, psycopg.Cursor(raw) as cursor:
        cursor.execute(sql, params, prepare=True)
        rows = cursor.fetchall()
    if db.queries_logged:
        db.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})
    return rows
