"""Small database helpers for the statements on a request path (the token realm and
the event receiver).

* ``fetch_all`` runs a fixed SQL text; on PostgreSQL through a server-binding psycopg
  cursor with ``prepare=True``, so psycopg prepares the statement once per connection
  and keeps at most ``prepared_max`` (100) of them. ``HOT_QUERIES_PREPARED=false`` sets
  the connection's ``prepare_threshold`` to None (in ``settings.DATABASES``), which turns
  preparing off for a transaction-mode pooler (PgBouncer before 1.21).
* ``execute_all`` runs statements as one transaction and returns each one's rows; on
  PostgreSQL as one query (one round trip, no ``BEGIN``/``COMMIT``).
* ``any_of`` / ``as_list_param`` and the ``__any`` lookup compare a column with a list
  given as ONE parameter: ``= ANY(%s)`` on PostgreSQL, a JSON array read by
  ``json_each`` on SQLite. The statement text does not depend on the list's length, so a
  request cannot multiply prepared statements (``IN (%s, %s, ...)`` would).
* ``RowLoader`` turns a slice of a row into a model instance with only some fields
  loaded: the realm's lookups are simple, and the ORM spent more time compiling them
  than the database spent answering.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterable, Sequence

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Field, ForeignObject, Lookup, Model
from psycopg import pq


def fetch_all(sql: str, params: Sequence) -> list[tuple]:
    """Rows of a query (``%s`` placeholders) on the default database. Errors are
    Django's, as from a cursor; a statement that returns no rows gives ``[]``."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    # What Django checks before it hands out a cursor and runs a statement.
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    db.validate_no_broken_transaction()
    started = time.monotonic()
    with db.wrap_database_errors:
        raw = db.connection
        cursor = _server_binding_cursor(raw)
        try:
            cursor.execute(sql, params, prepare=True)
        except psycopg.errors.FeatureNotSupported as exc:
            # A migration changed the type of a column the prepared statement returns.
            # In autocommit (the realm, the receiver's reads) forget this connection's
            # prepared statements, as psycopg does after DEALLOCATE ALL, and run it again;
            # in a transaction the error aborted it, and its rollback forgets them.
            if not raw.autocommit or _STALE_PLAN not in str(exc):
                raise
            cursor.execute("DEALLOCATE ALL")
            cursor.execute(sql, params, prepare=True)
        result = cursor.pgresult
        rows = cursor.fetchall() if result is not None and result.status == pq.ExecStatus.TUPLES_OK else []
    if db.queries_logged:
        db.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})
    return rows


def execute_all(statements: Sequence[tuple[str, Sequence]]) -> list[list[tuple]]:
    """Run statements in order as one transaction (all or none: inside a caller's
    transaction, a savepoint) and return each one's rows (``RETURNING``; ``[]`` for a
    statement without rows). An error raises as from a cursor (Django's, e.g.
    ``IntegrityError``) with none of the statements applied.

    On PostgreSQL the statements travel as one simple-protocol query, parameters bound
    by psycopg on the client as for any Django query: one message and one answer, and
    the server runs several statements of one query as one implicit transaction, so no
    ``BEGIN``/``COMMIT`` is exchanged. They are planned on each run (simple statements
    on unique indexes plan in microseconds); psycopg's pipeline mode, which could send
    them prepared, cost three times the client CPU and wall time of this one message
    (entering and leaving the mode, a wait per statement). SQLite runs one statement per
    call: a loop in ``atomic``."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        with transaction.atomic(using=DEFAULT_DB_ALIAS), db.cursor() as cursor:
            results = []
            for sql, params in statements:
                cursor.execute(sql, params)
                results.append(cursor.fetchall() if cursor.description else [])
            return results
    # Outside ``atomic`` the query is its own transaction; inside, a savepoint makes it one.
    atomic = transaction.atomic(using=DEFAULT_DB_ALIAS) if db.in_atomic_block else contextlib.nullcontext()
    with atomic, db.cursor() as cursor:
        cursor.execute(
            "; ".join(sql for sql, _params in statements), [p for _sql, params in statements for p in params]
        )
        results = []
        for _statement in statements:
            results.append(cursor.fetchall() if cursor.description else [])
            cursor.nextset()
        return results


_cursors = threading.local()
_STALE_PLAN = "cached plan must not change result type"


def _server_binding_cursor(raw: psycopg.Connection) -> psycopg.Cursor:
    """This thread's server-binding cursor on ``raw`` (Django's cursors bind parameters
    on the client, and psycopg prepares only what it binds on the server). One cursor is
    kept per thread and reused: creating one cost more than running a realm query."""
    cursor = getattr(_cursors, "cursor", None)
    if cursor is None or cursor.connection is not raw or cursor.closed:
        cursor = _cursors.cursor = psycopg.Cursor(raw)
    return cursor


def any_of(column: str, vendor: str) -> str:
    """SQL that is true when ``column`` equals an element of the next parameter, which
    must come from ``as_list_param``."""
    if vendor == "postgresql":
        return f"{column} = ANY(%s)"
    return f"{column} IN (SELECT value FROM json_each(%s))"


def as_list_param(values: Iterable, vendor: str):
    """``values`` as the one parameter ``any_of`` reads."""
    values = list(values)
    return values if vendor == "postgresql" else json.dumps(values)


class AnyOf(Lookup):
    """``field__any=[...]``: ``any_of`` for the ORM (a fixed text, unlike ``__in``)."""

    lookup_name = "any"
    prepare_rhs = False

    def get_prep_lookup(self):
        return [self.lhs.output_field.get_prep_value(value) for value in self.rhs]

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        values = [self.lhs.output_field.get_db_prep_value(v, connection, prepared=True) for v in self.rhs]
        return any_of(lhs, connection.vendor), [*lhs_params, as_list_param(values, connection.vendor)]


Field.register_lookup(AnyOf)
ForeignObject.register_lookup(AnyOf)  # foreign keys have their own lookups: ``project_id__any=``


class RowLoader:
    """Turns a slice of a result row into a model instance with only ``fields`` loaded
    (the others are deferred: loaded if ever touched)."""

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
        db = connections[DEFAULT_DB_ALIAS]
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
