"""Tag-name regular expressions with RE2 semantics (cleanup policies, bulk tag deletion).

GitLab validates and applies these patterns with RE2: no back-references and no
look-around, linear-time matching. We use the ``re2`` module of the google-re2 package,
so a pattern that GitLab accepts behaves the same here.

Anchoring decision: a pattern must match the *whole* tag name, and we anchor it with a
group, i.e. ``\\A(?:pattern)\\z``. So ``a|b`` means exactly "a" or "b". GitLab builds
``\\A`` + pattern + ``\\z`` by plain concatenation, which turns ``C|D`` into "starts with C
or ends with D"; that is a documented quirk we deliberately do not copy.
"""

from __future__ import annotations

import re2

# RE2 caps the compiled program size; 8 MiB is the library default and plenty for tag
# patterns, while still refusing pathological ones with a clear error.
_MAX_MEM = 8 << 20


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # errors are reported to the caller, not to stderr
    options.max_mem = _MAX_MEM
    return options


def _error_detail(exc: re2.error) -> str:
    detail = exc.args[0] if exc.args else str(exc)
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    return str(detail)


def validate_regex(pattern: str) -> str | None:
    """None when ``pattern`` is valid RE2 syntax, else RE2's error detail."""
    if not isinstance(pattern, str):
        return "not a string"
    try:
        re2.compile(pattern, _options())
    except re2.error as exc:
        return _error_detail(exc)
    except (TypeError, ValueError, UnicodeError) as exc:
        return str(exc)
    return None


class AnchoredRegex:
    """A compiled pattern that answers whether a tag name matches it as a whole."""

    def __init__(self, pattern: str):
        self.pattern = pattern
        self._compiled = re2.compile(r"\A(?:" + pattern + r")\z", _options())

    def matches(self, name: str) -> bool:
        return self._compiled.search(name) is not None

    def __repr__(self) -> str:
        return f"AnchoredRegex({self.pattern!r})"


def compile_anchored(pattern: str) -> AnchoredRegex:
    """Compile ``pattern`` for full-name matching; raises ``ValueError`` when invalid."""
    detail = validate_regex(pattern)
    if detail is not None:
        raise ValueError(f"invalid regexp {pattern!r}: {detail}")
    return AnchoredRegex(pattern)
