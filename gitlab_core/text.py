"""The rules for request text that may reach the database: ``clean_text``, and
``parse_int_id`` for a numeric id.

PostgreSQL refuses a NUL character in any text value (a query with one fails, it is not
just "not found"), and neither database can store a lone surrogate (what a JSON body's
``"\\ud800"`` decodes to). Every caller that hands request text to a query asks this
function first and answers the request's own "invalid" or "not found" when it is False.
"""

from __future__ import annotations


def clean_text(value: str) -> bool:
    """False for text no database can store: NUL characters or lone surrogates."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# The largest id a bigint column holds.
MAX_INT = 2**63 - 1


def parse_int_id(raw: str) -> int | None:
    """The id ``raw`` spells in ASCII digits (``²`` and ``٣`` are digits to
    ``str.isdigit`` but not numbers), None when it spells none a database can hold."""
    if not raw.isascii() or not raw.isdigit():
        return None
    value = int(raw)
    return value if 0 < value <= MAX_INT else None
