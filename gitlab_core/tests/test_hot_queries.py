"""gitlab_core.hot_queries: the prepared statements of the realm and the receiver.

On PostgreSQL a hot query is a named prepared statement run through libpq directly, in
autocommit (how both endpoints run) and inside transactions (tests, atomic blocks). It
must answer, fail and recover exactly as a Django cursor would."""

from __future__ import annotations

import datetime as dt
import gc
import weakref

import psycopg
import pytest
from django.db import IntegrityError, OperationalError, connection, transaction

from container_registry.models import RegistryEvent
from gitlab_core.hot_queries import _numbered, fetch_all

EVENTS = RegistryEvent._meta.db_table
INSERT = f"INSERT INTO {EVENTS} (event_id, action, repository, received_at) VALUES (%s, 'push', 'a/b', %s) RETURNING id"


@pytest.fixture
def postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's; elsewhere fetch_all is a plain cursor")


def _prepared_here() -> dict[str, tuple[int, int]]:
    """This session's prepared statements: text -> (generic plans, custom plans)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")
        return {statement: (generic, custom) for statement, generic, custom in cursor.fetchall()}


def test_placeholders_become_numbered_and_doubled_percent_signs_literal():
    assert _numbered("SELECT %s, '100%%' WHERE a = %s") == "SELECT $1, '100%' WHERE a = $2"


@pytest.mark.django_db(transaction=True)
def test_a_hot_query_is_prepared_once_per_connection_and_reused(postgresql):
    sql = "SELECT %s::bigint + 1, %s::timestamptz, %s::boolean, %s::text"
    stamp = dt.datetime(2026, 11, 27, 12, 30, tzinfo=dt.UTC)
    for n in range(7):
        assert fetch_all(sql, [n, stamp, True, None]) == [(n + 1, stamp, True, None)]
    statement = "SELECT $1::bigint + 1, $2::timestamptz, $3::boolean, $4::text"
    generic, custom = _prepared_here()[statement]
    assert generic + custom == 7  # one statement, planned ahead, executed seven times


@pytest.mark.django_db(transaction=True)
def test_rows_are_the_same_python_values_as_a_django_cursor_gives(postgresql):
    inserted = fetch_all(INSERT, ["e-1", dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC)])
    sql = f"SELECT id, event_id, tag, received_at FROM {EVENTS} WHERE event_id = %s"
    with connection.cursor() as cursor:
        cursor.execute(sql, ["e-1"])
        expected = cursor.fetchall()
    assert fetch_all(sql, ["e-1"]) == expected
    assert expected[0][0] == inserted[0][0]
    assert expected[0][3] == dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC)


@pytest.mark.django_db(transaction=True)
def test_a_statement_deallocated_behind_its_back_is_prepared_again(postgresql):
    assert fetch_all("SELECT %s::int * 2", [21]) == [(42,)]
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # as psycopg does after a rollback
    assert _prepared_here() == {}
    assert fetch_all("SELECT %s::int * 2", [4]) == [(8,)]
    assert "SELECT $1::int * 2" in _prepared_here()


@pytest.mark.django_db(transaction=True)
def test_a_statement_whose_result_type_a_migration_changed_is_prepared_again(postgresql):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE hot_query_probe (n integer)")
        cursor.execute("INSERT INTO hot_query_probe VALUES (7)")
    try:
        sql = "SELECT n FROM hot_query_probe WHERE n > %s"
        assert fetch_all(sql, [0]) == [(7,)]
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE hot_query_probe ALTER COLUMN n TYPE text")
        assert fetch_all(sql.replace("n > %s", "n <> %s"), ["x"]) == [("7",)]
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE hot_query_probe ALTER COLUMN n TYPE bigint USING n::bigint")
        assert fetch_all(sql, [0]) == [(7,)]  # the same text, prepared again for bigint
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE hot_query_probe")


@pytest.mark.django_db(transaction=True)
def test_a_constraint_violation_is_djangos_integrity_error_and_the_connection_goes_on(postgresql):
    stamp = dt.datetime.now(dt.UTC)
    fetch_all(INSERT, ["same-id", stamp])
    with pytest.raises(IntegrityError):
        fetch_all(INSERT, ["same-id", stamp])
    fetch_all(INSERT, ["other-id", stamp])
    assert sorted(RegistryEvent.objects.values_list("event_id", flat=True)) == ["other-id", "same-id"]


@pytest.mark.django_db(transaction=True)
def test_a_lost_connection_is_operational_error_and_the_next_request_reconnects(postgresql):
    assert fetch_all("SELECT pg_backend_pid() + %s", [0])
    pid = fetch_all("SELECT pg_backend_pid() + %s", [0])[0][0]
    params = connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k not in ("cursor_factory", "context")}) as killer:
        killer.execute("SELECT pg_terminate_backend(%s)", [pid])
    with pytest.raises(OperationalError):
        fetch_all("SELECT pg_backend_pid() + %s", [0])
    # What the doors and Django's request signals do between requests.
    connection.close_if_unusable_or_obsolete()
    assert fetch_all("SELECT pg_backend_pid() + %s", [0])[0][0] != pid


@pytest.mark.django_db(transaction=True)
def test_in_a_transaction_the_query_belongs_to_it_and_the_statement_outlives_a_rollback(postgresql):
    stamp = dt.datetime.now(dt.UTC)
    fetch_all(INSERT, ["before", stamp])  # prepared in autocommit
    with pytest.raises(RuntimeError), transaction.atomic():
        # The first statement of the block: the transaction is opened for it.
        fetch_all(INSERT, ["rolled-back", stamp])
        assert RegistryEvent.objects.filter(event_id="rolled-back").exists()
        raise RuntimeError("roll back")
    assert not RegistryEvent.objects.filter(event_id="rolled-back").exists()
    statement = _numbered(INSERT)
    assert statement in _prepared_here()
    fetch_all(INSERT, ["after", stamp])
    assert sorted(RegistryEvent.objects.values_list("event_id", flat=True)) == ["after", "before"]
    generic, custom = _prepared_here()[statement]
    assert generic + custom == 3  # prepared once, run three times


@pytest.mark.django_db
def test_a_parameter_that_meets_no_column_keeps_its_python_type(postgresql):
    # The server would read an untyped parameter in "THEN %s" as text ('50', not 50).
    sql = "SELECT CASE WHEN %s THEN %s ELSE NULL END, %s"
    assert fetch_all(sql, [True, 50, dt.date(2026, 11, 27)]) == [(50, dt.date(2026, 11, 27))]
    assert fetch_all(sql, [False, 50, None]) == [(None, None)]


@pytest.mark.django_db(transaction=True)
def test_a_closed_connection_is_freed(postgresql):
    fetch_all("SELECT %s::int", [1])
    raw = weakref.ref(connection.connection)
    connection.close()
    gc.collect()
    assert raw() is None
