"""Small database helpers for the statements on a request path (the token realm and
the event receiver).

* ``fetch_all`` runs one fixed SQL text and returns its rows; on PostgreSQL prepared by
  psycopg (``prepare=True``: once per connection, at most ``prepared_max``, 100, kept).
  ``HOT_QUERIES_PREPARED=false`` turns preparing off for a transaction-mode pooler.
* ``fetch_side_by_side`` reads the rows of several small, independent lookups in one
  round trip (one fixed statement of their texts).
* ``write_together`` runs data-changing statements that find their rows through shared
  common table expressions as one transaction: on PostgreSQL as ONE statement (its
  data-modifying ``WITH`` parts), on SQLite one after the other; ``locking`` has
  PostgreSQL lock and re-read the shared rows.
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
import functools
import json
import threading
import time
from collections.abc import Iterable, Sequence

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Field, ForeignObject, Lookup, Model
from psycopg import pq


def fetch_all(sql: str, params: Sequence) -> list[tuple]:
    """Rows of a statement (``%s`` placeholders) on the default database; ``[]`` for one
    that returns none. Errors are Django's, as from a cursor (e.g. ``IntegrityError``).

    On PostgreSQL the statement is prepared by psycopg (``prepare=True``: parsed and
    planned once per connection; psycopg keeps at most ``prepared_max`` of them).
    ``HOT_QUERIES_PREPARED=false`` sets the connection's ``prepare_threshold`` to None (in
    ``settings.DATABASES``), which turns preparing off for a transaction-mode pooler
    (PgBouncer before 1.21)."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []
    # What Django checks before it hands out a cursor and runs a statement.
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    db.validate_no_broken_transaction()
    started = time.monotonic()
    with db.wrap_database_errors:
        raw = db.connection
        try:
            rows = _prepared(raw, sql, params)
        except psycopg.errors.FeatureNotSupported as exc:
            # A migration changed the type of a column a prepared statement returns. In
            # autocommit (a request outside ``atomic``) forget this connection's prepared
            # statements, as psycopg does after DEALLOCATE ALL, and run it again; in a
            # transaction the error aborted it, and its rollback forgets them.
            if not raw.autocommit or _STALE_PLAN not in str(exc):
                raise
            raw.execute("DEALLOCATE ALL")
            rows = _prepared(raw, sql, params)
    if db.queries_logged:
        db.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})
    return rows


def _prepared(raw: psycopg.Connection, sql: str, params: Sequence) -> list[tuple]:
    cursor = _cursor(raw)
    cursor.execute(sql, params, prepare=True)
    result = cursor.pgresult
    return cursor.fetchall() if result is not None and result.status == pq.ExecStatus.TUPLES_OK else []


# One cursor per thread, made again when the thread's connection changes: creating a
# psycopg cursor (its adapters and transformer) cost 18 us, a fifth of a prepared
# statement's client time. Django connections belong to one thread, so does this.
_cursors = threading.local()


def _cursor(raw: psycopg.Connection) -> psycopg.Cursor:
    # A server-binding cursor: Django's cursors bind parameters on the client, and
    # psycopg prepares only what it binds on the server.
    cursor = getattr(_cursors, "cursor", None)
    if cursor is None or cursor.connection is not raw or cursor.closed:
        cursor = _cursors.cursor = psycopg.Cursor(raw)
    return cursor


_STALE_PLAN = "cached plan must not change result type"


def fetch_side_by_side(statements: Sequence[tuple[str, Sequence, int]]) -> list[list[tuple]]:
    """The rows of independent ``SELECT`` statements, read in one round trip: for each
    statement, given as (text, parameters, number of columns), its rows. Each statement
    joined saves a round trip and, on PostgreSQL, a transaction: the token realm reads
    its failed-login check, the personal access token and the access statement together
    (joining the check saved an eighth of a token request's CPU, joining the access
    statement a tenth more; docs/performance.md).

    Each statement's first column must be a key of its rows, never NULL (a primary key,
    or the key a row was found for): a statement without rows reads as NULLs there. Each must return few rows: the
    statement they make holds every combination of their rows. One fixed text on
    SQLite and PostgreSQL, prepared as ``fetch_all`` prepares."""
    sql = _side_by_side_sql(tuple(text for text, _params, _width in statements))
    rows = fetch_all(sql, [param for _text, params, _width in statements for param in params])
    if rows and len(rows[0]) != sum(width for _text, _params, width in statements):
        raise ValueError("the statements' column counts do not add up to the joined statement's")
    result, start = [], 0
    for _text, _params, width in statements:
        found = {row[start]: row[start : start + width] for row in rows if row[start] is not None}
        result.append(list(found.values()))
        start += width
    return result


@functools.lru_cache(maxsize=32)
def _side_by_side_sql(texts: tuple[str, ...]) -> str:
    # The callers' texts are fixed, so few; the cache only saves joining them per call.
    columns = ", ".join(f"s{index}.*" for index in range(len(texts)))
    joins = " ".join(f"LEFT JOIN ({text}) AS s{index} ON TRUE" for index, text in enumerate(texts))
    return f"SELECT {columns} FROM (SELECT 1 AS one) AS base {joins}"


def write_together(shared: tuple[str, Sequence], statements: Sequence[tuple[str, Sequence]]) -> list[tuple]:
    """Run data-changing statements as one transaction (all or none: inside a caller's
    transaction, a savepoint) and return the rows of the first one, which must return
    rows (``RETURNING``). ``shared`` is the text and parameters of common table
    expressions (``"target AS (SELECT ...)"``) that every statement may read; a
    statement is an ``UPDATE``, ``INSERT`` or ``DELETE`` without a ``WITH`` of its own.

    On PostgreSQL they run as ONE statement, ``WITH shared, s0 AS (first), s1 AS
    (second) ... SELECT * FROM s0`` (one prepared statement, one round trip, no
    ``BEGIN``/``COMMIT`` outside a caller's transaction). SQLite has no data-modifying
    ``WITH``: there each runs as ``WITH shared <statement>``, in order, in ``atomic``.
    For both to have the same effects, no statement may read what another writes, nor
    depend on whether another changed a row: each acts on the rows ``shared`` selects.
    On PostgreSQL the parts of one statement see one snapshot, so ``shared`` should lock
    the rows it selects (``locking``): a transaction that changed one of them and
    commits while this statement waits for it is then seen by every part alike (the row
    is read again at its newest version, and dropped if it no longer qualifies). Other
    tables' rows, and rows that start to qualify after the snapshot, are read as of the
    snapshot, as any single PostgreSQL statement reads them."""
    db = connections[DEFAULT_DB_ALIAS]
    ctes, ctes_params = shared
    if db.vendor == "postgresql":
        sql = _together_sql(ctes, tuple(statement for statement, _params in statements))
        params = [*ctes_params, *(param for _statement, params in statements for param in params)]
        # One statement is a transaction by itself; inside a caller's, a savepoint lets
        # the caller go on after its failure (e.g. a duplicate's IntegrityError).
        with transaction.atomic(using=DEFAULT_DB_ALIAS) if db.in_atomic_block else contextlib.nullcontext():
            return fetch_all(sql, params)
    with transaction.atomic(using=DEFAULT_DB_ALIAS), db.cursor() as cursor:
        rows = None
        for statement, params in statements:
            cursor.execute(f"WITH {ctes} {statement}", [*ctes_params, *params])
            if rows is None:
                rows = cursor.fetchall()
        return rows or []


def locking(alias: str, vendor: str) -> str:
    """The clause that ends a ``SELECT`` of ``write_together``'s shared part: on
    PostgreSQL it locks the selected rows of the table ``alias`` as an ``UPDATE`` would
    (waiting for a transaction that changed them, then reading them again); nothing on
    SQLite, where a writing transaction excludes every other writer."""
    return f" FOR NO KEY UPDATE OF {alias}" if vendor == "postgresql" else ""


@functools.lru_cache(maxsize=32)
def _together_sql(ctes: str, statements: tuple[str, ...]) -> str:
    # The callers' texts are fixed, so few; the cache only saves joining them per call.
    parts = ", ".join(f"s{index} AS ({statement})" for index, statement in enumerate(statements))
    return f"WITH {ctes}, {parts} SELECT * FROM s0"


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
    JSON (``c ->> 0`` reads an array's first element, on both databases).

    On PostgreSQL the parameter is read as ``jsonb``, parsed once: a ``json`` value is
    text, parsed again by every ``->``, and a statement that reads ``c`` for each row of
    a subquery spent most of its time there (the realm's access statement: 0.75 ms of
    PostgreSQL CPU a request, 0.3 ms as ``jsonb``)."""
    if vendor == "postgresql":
        return (
            "SELECT e ->> 0 AS a, e ->> 1 AS b, e -> 2 AS c, e ->> 3 AS d "
            "FROM jsonb_array_elements(CAST(%s AS jsonb)) AS e"
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
