"""A personal access token found by its secret, and its use recorded: the one lookup
that the token realm (``/jwt/auth``) and the API's token authentication share.

Secrets are looked up by digest (never stored) and compared in constant time.
"""

from __future__ import annotations

import functools
import hmac

from django.utils import timezone

from gitlab_core import tokens
from gitlab_core.db import RowLoader, fetch_all
from gitlab_core.models import PersonalAccessToken, User

# last_used_at is written at most this often per token, not on every request.
LAST_USED_RESOLUTION_SECONDS = 600


@functools.cache
def _statement() -> tuple[RowLoader, RowLoader, str]:
    """The token and its user in one query (a prepared statement on PostgreSQL)."""
    token = RowLoader(PersonalAccessToken, frozenset(f.attname for f in PersonalAccessToken._meta.concrete_fields), "t")
    user = RowLoader(User, frozenset(f.attname for f in User._meta.concrete_fields), "u")
    sql = (
        f"SELECT {token.columns}, {user.columns} FROM {PersonalAccessToken._meta.db_table} t "
        f"JOIN {User._meta.db_table} u ON u.id = t.user_id WHERE t.token_digest = %s"
    )
    return token, user, sql


def find_personal_access_token(secret: str) -> PersonalAccessToken | None:
    """The token whose digest matches ``secret``, with its user loaded; None when there
    is none. Revoked and expired tokens are returned too: callers say why they refuse."""
    sql, params, _width = lookup_statement(secret)
    return token_of(fetch_all(sql, params), secret)


def lookup_statement(secret: str) -> tuple[str, list, int]:
    """``find_personal_access_token``'s statement as (text, parameters, number of
    columns), for a caller that reads it beside another lookup
    (``gitlab_core.db.fetch_side_by_side``); ``token_of`` reads its rows."""
    token_loader, user_loader, sql = _statement()
    return sql, [tokens.digest(secret)], len(token_loader) + len(user_loader)


def may_be_token(secret: str) -> bool:
    """Whether ``secret`` has the shape of a personal access token: every one starts with
    ``tokens.PAT_PREFIX``. For a caller that reads more ahead of the lookup (``owner_id_sql``)
    only when it is likely to count; the lookup itself does not depend on it."""
    return secret.startswith(tokens.PAT_PREFIX)


def owner_id_sql(secret: str) -> tuple[str, list]:
    """SQL for the id of the user whose personal access token ``secret`` is (NULL when
    none; revoked and expired tokens too), and its parameters: for a statement that
    reads that user's data in the same round trip as ``lookup_statement``. What it
    read counts only once ``token_of`` found the token and the caller accepted it."""
    return (
        f"(SELECT o.user_id FROM {PersonalAccessToken._meta.db_table} o WHERE o.token_digest = %s)",
        [tokens.digest(secret)],
    )


def token_of(rows: list[tuple], secret: str) -> PersonalAccessToken | None:
    """The token, with its user, that ``lookup_statement``'s rows hold for ``secret``."""
    if not rows:
        return None
    token_loader, user_loader, _sql = _statement()
    width = len(token_loader)
    token = token_loader.load(rows[0][:width])
    if not hmac.compare_digest(token.token_digest, tokens.digest(secret)):
        return None
    token.user = user_loader.load(rows[0][width:])
    return token


def touch_last_used(token: PersonalAccessToken) -> None:
    """Record that ``token`` was used now (at most every ``LAST_USED_RESOLUTION_SECONDS``)."""
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > LAST_USED_RESOLUTION_SECONDS:
        PersonalAccessToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
