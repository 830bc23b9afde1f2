"""Plain SQL for the few queries that run on every ``/jwt/auth`` request or registry
event (the receiver's one statement writes, in autocommit).

The realm's lookups are simple, but the ORM spent more time compiling them than the
database spent answering, and PostgreSQL spent more time planning them than running
them. Queries run through here are written once as SQL (built from model metadata by
their callers); on PostgreSQL they run as server-side prepared statements, planned once
per connection, prepared and run by libpq's own calls with psycopg's adapters for the
values (psycopg's cursor cost about twice the Python time for the same round trip; see
``_run_prepared``). Rows come back through the backend's converters, as ORM results
do, and become model instances whose other fields stay deferred (loaded if ever touched).

``HOT_QUERIES_PREPARED`` (default on) switches the prepared statements off, for a
transaction-mode connection pooler that does not support them (PgBouncer < 1.21).
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import time
import weakref
from collections.abc import Sequence

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model
from psycopg import postgres, pq
from psycopg.adapt import PyFormat, Transformer


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
    """Rows of a query (``%s`` placeholders) on the default database. Errors are
    Django's, as from a cursor; a statement that returns no rows gives ``[]``, and a
    wrong number of parameters is the server's protocol error (``OperationalError``)."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql" or not getattr(settings, "HOT_QUERIES_PREPARED", True):
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    # What Django's cursor() checks before it hands out a cursor.
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    db.validate_no_broken_transaction()
    raw = db.connection
    started = time.monotonic()
    # wrap_database_errors turns psycopg's errors into Django's and marks the connection
    # unusable on errors, as Django's cursors do; the lock is the one psycopg's cursors
    # take (a connection shared between threads, as live-server tests allow).
    with db.wrap_database_errors, raw.lock:
        rows = _run_prepared(raw, sql, params)
    if db.queries_logged:
        db.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})
    return rows


class _Statements:
    """The statements prepared on one connection, by SQL text, and a transformer with
    the connection's adapters (Django's time-zone aware loaders among them). It holds no
    reference to the connection, so a closed connection is freed as before."""

    def __init__(self, raw: psycopg.Connection):
        self.names: dict[str, bytes] = {}
        self.transformer = Transformer(raw.adapters)


_statements: weakref.WeakKeyDictionary[psycopg.Connection, _Statements] = weakref.WeakKeyDictionary()
_PLACEHOLDER = re.compile(r"%([%s])")
_STALE_PLAN = "cached plan must not change result type"
_OK = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)


# Parameter types declared when a statement is prepared, from the first call's values:
# the server cannot infer a type where a parameter meets no column (``THEN %s``), and
# would read it as text. Other values (text, NULL) are left to the server to infer.
def _type_of(value) -> int:
    if isinstance(value, bool):
        return postgres.types["bool"].oid
    if isinstance(value, int):
        return postgres.types["int8"].oid
    if isinstance(value, dt.datetime):
        return postgres.types["timestamptz" if value.tzinfo else "timestamp"].oid
    if isinstance(value, dt.date):
        return postgres.types["date"].oid
    return 0


def _run_prepared(raw: psycopg.Connection, sql: str, params: Sequence) -> list[tuple]:
    """``sql`` as a named prepared statement of this connection, run through libpq's
    blocking call, which releases the GIL while it waits. psycopg's cursor does the same
    over several Python layers that cost about a fifth of a registry event's CPU time;
    its adapters still turn the values into text and the rows back into Python values.

    psycopg itself never prepares a statement here (Django's cursors bind client-side),
    so its rollbacks never send ``DEALLOCATE ALL``; and a prepared statement outlives a
    rolled-back transaction. Inside a transaction the statement is part of it: a
    transaction psycopg has yet to open is opened as psycopg would."""
    statements = _statements.get(raw)
    if statements is None:
        statements = _statements[raw] = _Statements(raw)
    pgconn = raw.pgconn
    if not raw.autocommit and pgconn.transaction_status == pq.TransactionStatus.IDLE:
        _check(raw, pgconn.exec_(_begin_command(raw)))
    name = statements.names.get(sql)
    if name is None:
        name = statements.names[sql] = _prepare(raw, sql, f"hot_{len(statements.names)}".encode(), params)
    transformer = statements.transformer
    values = transformer.dump_sequence(params, [PyFormat.TEXT] * len(params))
    try:
        result = _check(raw, pgconn.exec_prepared(name, values))
    except (psycopg.errors.InvalidSqlStatementName, psycopg.errors.FeatureNotSupported) as exc:
        stale_plan = isinstance(exc, psycopg.errors.FeatureNotSupported)
        if not raw.autocommit or (stale_plan and _STALE_PLAN not in str(exc)):
            raise  # in a transaction, the error aborted it: nothing can be retried there
        # Deallocated behind our back (a DEALLOCATE ALL or DISCARD ALL someone ran), or
        # a migration changed the type of a column it returns: prepare it again, once.
        if stale_plan:
            _check(raw, pgconn.exec_(b"DEALLOCATE " + name))
        _prepare(raw, sql, name, params)
        result = _check(raw, pgconn.exec_prepared(name, values))
    transformer.set_pgresult(result)
    return transformer.load_rows(0, result.ntuples, tuple)


def _prepare(raw: psycopg.Connection, sql: str, name: bytes, params: Sequence) -> bytes:
    types = [_type_of(value) for value in params]
    _check(raw, raw.pgconn.prepare(name, _numbered(sql).encode(), types))
    return name


def _begin_command(raw: psycopg.Connection) -> bytes:
    """The ``BEGIN`` psycopg sends to open a transaction on this connection."""
    parts = [b"BEGIN"]
    if raw.isolation_level is not None:
        parts.append(b"ISOLATION LEVEL " + raw.isolation_level.name.replace("_", " ").encode())
    if raw.read_only is not None:
        parts.append(b"READ ONLY" if raw.read_only else b"READ WRITE")
    if raw.deferrable is not None:
        parts.append(b"DEFERRABLE" if raw.deferrable else b"NOT DEFERRABLE")
    return b" ".join(parts)


def _check(raw: psycopg.Connection, result: pq.abc.PGresult) -> pq.abc.PGresult:
    """``result``, or the error it reports raised as psycopg's cursors raise it."""
    if result.status in _OK:
        return result
    if raw.pgconn.status == pq.ConnStatus.BAD:
        # A lost connection leaves no SQLSTATE: say so as psycopg's cursors do.
        raise psycopg.OperationalError(raw.pgconn.get_error_message())
    raise psycopg.errors.error_from_result(result, encoding=raw.info.encoding)


def _numbered(sql: str) -> str:
    """``%s`` placeholders as PostgreSQL's ``$1``, ``$2``... (``%%`` is a literal ``%``)."""
    counter = itertools.count(1)
    return _PLACEHOLDER.sub(lambda m: "%" if m.group(1) == "%" else f"${next(counter)}", sql)
