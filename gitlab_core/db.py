"""Small database helpers for the statements on a request path (the token realm and
the event receiver).

* ``execute_all`` runs fixed SQL texts as one transaction and returns each one's rows;
  on PostgreSQL prepared by psycopg (``prepare=True``: once per connection, at most
  ``prepared_max``, 100, kept) and sent in one round trip (a pipeline), with no
  ``BEGIN``/``COMMIT``. ``HOT_QUERIES_PREPARED=false`` turns preparing off for a
  transaction-mode pooler. ``fetch_all`` runs one statement that way.
* ``any_of`` / ``as_list_param`` and the ``__any`` lookup compare a column with a list
  given as ONE parameter: ``= ANY(%s)`` on PostgreSQL, a JSON array read by
  ``json_each`` on SQLite. The statement text does not depend on the list's length, so a
  request cannot multiply prepared statements (``IN (%s, %s, ...)`` would).
* ``json_rows`` reads a JSON array of entries given as one parameter as rows.
* ``RowLoader`` turns a slice of a row into a model instance with only some fields
  loaded: the realm's lookups are simple, and the ORM spent more time compiling them
  than the database spent answering.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Sequence

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Field, ForeignObject, Lookup, Model
from psycopg import pq


def fetch_all(sql: str, params: Sequence) -> list[tuple]:
    """Rows of a query (``%s`` placeholders) on the default database. Errors are
    Django's, as from a cursor; a statement that returns no rows gives ``[]``."""
    return execute_all([(sql, params)])[0]


def execute_all(statements: Sequence[tuple[str, Sequence]]) -> list[list[tuple]]:
    """Run statements in order as one transaction (all or none: inside a caller's
    transaction, a savepoint) and return each one's rows (``[]`` for a statement that
    returns none). An error raises as from a cursor (Django's, e.g. ``IntegrityError``)
    with none of the statements applied.

    On PostgreSQL the statements are prepared by psycopg (``prepare=True``: parsed and
    planned once per connection, psycopg keeps at most ``prepared_max`` of them) and sent
    in one pipeline: one round trip, and no ``BEGIN``/``COMMIT`` is exchanged, because the
    server runs the statements before a pipeline's sync as one implicit transaction.
    ``HOT_QUERIES_PREPARED=false`` sets the connection's ``prepare_threshold`` to None (in
    ``settings.DATABASES``), which turns preparing off for a transaction-mode pooler
    (PgBouncer before 1.21). SQLite runs one statement after the other in ``atomic``."""
    db = connections[DEFAULT_DB_ALIAS]
    # One statement is a transaction by itself: no savepoint, no pipeline.
    several = len(statements) > 1
    if db.vendor != "postgresql":
        atomic = transaction.atomic(using=DEFAULT_DB_ALIAS) if several else contextlib.nullcontext()
        with atomic, db.cursor() as cursor:
            results = []
            for sql, params in statements:
                cursor.execute(sql, params)
                results.append(cursor.fetchall() if cursor.description else [])
            return results
    # What Django checks before it hands out a cursor and runs a statement.
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    db.validate_no_broken_transaction()
    started = time.monotonic()
    # Outside ``atomic`` the pipeline is its own transaction; inside, a savepoint makes it one.
    atomic = transaction.atomic(using=DEFAULT_DB_ALIAS) if several and db.in_atomic_block else contextlib.nullcontext()
    with atomic, db.wrap_database_errors:
        raw = db.connection
        try:
            results = _pipeline(raw, statements)
        except psycopg.errors.FeatureNotSupported as exc:
            # A migration changed the type of a column a prepared statement returns. In
            # autocommit (a request outside ``atomic``) forget this connection's prepared
            # statements, as psycopg does after DEALLOCATE ALL, and run them again; in a
            # transaction the error aborted it, and its rollback forgets them.
            if not raw.autocommit or _STALE_PLAN not in str(exc):
                raise
            raw.execute("DEALLOCATE ALL")
            results = _pipeline(raw, statements)
    if db.queries_logged:
        elapsed = f"{time.monotonic() - started:.3f}"
        db.queries_log.extend({"sql": sql, "time": elapsed} for sql, _params in statements)
    return results


def _sendable(value) -> bool:
    """Whether psycopg can send ``value`` as text: the strings a parameter holds must
    be valid UTF-8 without NUL (the other types our statements pass always are)."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return False
        return "\x00" not in value
    if isinstance(value, (list, tuple)):
        return all(_sendable(item) for item in value)
    return True


def _pipeline(raw: psycopg.Connection, statements: Sequence[tuple[str, Sequence]]) -> list[list[tuple]]:
    # A parameter that fails to convert after earlier statements were queued would leave
    # those to the pipeline's sync, which commits them: check them all first.
    if len(statements) > 1 and not all(_sendable(p) for _sql, params in statements for p in params):
        raise psycopg.DataError("a parameter holds a NUL character or a string that is not valid UTF-8")
    # One server-binding cursor per statement (Django's cursors bind parameters on the
    # client, and psycopg prepares only what it binds on the server); each keeps its
    # statement's result once the pipeline has synced.
    cursors = [psycopg.Cursor(raw) for _statement in statements]
    with raw.pipeline() if len(statements) > 1 else contextlib.nullcontext():
        for cursor, (sql, params) in zip(cursors, statements, strict=True):
            cursor.execute(sql, params, prepare=True)
    results = []
    for cursor in cursors:
        result = cursor.pgresult
        results.append(cursor.fetchall() if result is not None and result.status == pq.ExecStatus.TUPLES_OK else [])
        cursor.close()
    return results


_STALE_PLAN = "cached plan must not change result type"


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


def json_rows(vendor: str) -> str:
    """A subquery whose rows (columns ``a``, ``b``, ``c``, ``d``) are the entries of the
    next parameter, a JSON array of ``[string, string, JSON value, string]`` entries as
    one parameter, so that the statement text does not depend on their number. ``c`` is
    JSON (``c ->> 0`` reads an array's first element, on both databases)."""
    if vendor == "postgresql":
        return (
            "SELECT e ->> 0 AS a, e ->> 1 AS b, e -> 2 AS c, e ->> 3 AS d "
            "FROM json_array_elements(CAST(%s AS json)) AS e"
        )
    return "SELECT value ->> 0 AS a, value ->> 1 AS b, value -> 2 AS c, value ->> 3 AS d FROM json_each(%s)"


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
