"""The realm's statements have a fixed text, so a client cannot grow a database session:
whatever the number of scopes, the serving connection holds the same few prepared
statements."""

from __future__ import annotations

import pytest
from django.db import connection

from tests_support.factories import make_token


def _prepared_statements() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_requests_with_1_to_200_scopes_keep_the_prepared_statements_constant(realm, world, settings, make_deploy_token):
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    settings.REALM_DECISION_CACHE_SECONDS = 0
    developer = ("developer", make_token(world["users"]["developer"]))
    group_token, group_secret = make_deploy_token(world["acme"])
    group_deploy = (group_token.username, group_secret)

    def send(count: int, creds) -> None:
        scopes = [f"repository:acme/platform/svc/img{n}:pull" for n in range(count)]
        response = realm.get(*scopes, creds=creds)
        assert response.status_code in (200, 403), response.content  # anonymous: nothing granted

    # Warm up: every statement shape the realm has, anonymous and with a token.
    for creds in (None, developer, group_deploy):
        send(1, creds)
        send(2, creds)
    warm = _prepared_statements()
    assert warm > 0
    for count in (1, 3, 7, 20, 49, 50, 51, 120, 200):
        for creds in (None, developer, group_deploy):
            send(count, creds)
    assert _prepared_statements() == warm
