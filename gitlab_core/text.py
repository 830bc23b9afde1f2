"""The one rule for text that may reach the database: ``clean_text``.

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
