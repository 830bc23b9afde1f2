"""The rules of tag cleanup: which tags a cleanup policy (or a bulk delete request)
deletes or keeps, and why. Pure functions over tag names and creation times: no
registry calls, no database, no cache (the run is ``container_registry.cleanup``).

Filters, in GitLab's order:

1. the tag ``latest`` is never deleted;
2. a tag is a candidate only if its whole name matches the delete regex and does not
   match the keep regex (no delete regex: nothing is a candidate);
3. ``keep_n``: the newest N candidates are kept (an unknown creation time counts as
   newest, so such a tag is kept first);
4. ``older_than``: of the rest, only tags created before now - older_than are deleted;
   a tag whose creation time is unknown is kept.

A run deletes the oldest first and at most ``max_list_size`` tags (``limit_deletions``);
the creation time of a kept tag may be remembered for as long as the decision holds
(``kept_until``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from container_registry.regex import AnchoredRegex, compile_anchored

if TYPE_CHECKING:
    from container_registry.models import ContainerExpirationPolicy

# Rules that decide a tag (the "rule" of a plan entry).
RULE_LATEST = "latest"
RULE_NAME_REGEX_DELETE = "name_regex_delete"
RULE_NAME_REGEX_KEEP = "name_regex_keep"
RULE_KEEP_N = "keep_n"
RULE_OLDER_THAN = "older_than"
RULE_CREATED_AT_UNKNOWN = "created_at_unknown"

_DURATION = re.compile(r"^\s*(\d+)\s*(h|hours?|d|days?|w|weeks?|months?|y|years?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"h": 3600, "d": 86400, "w": 7 * 86400, "m": 30 * 86400, "y": 365 * 86400}


class InvalidCleanupRules(ValueError):
    """A regex or duration of the rules is not valid (the message says which)."""


def parse_older_than(value: str | None) -> dt.timedelta | None:
    """``1h``, ``2d``, ``1w``, ``1month``, ``3months``, ``1y`` (a month is 30 days, as in
    GitLab's ChronicDuration). None for None or blank; ValueError otherwise."""
    if value is None or not str(value).strip():
        return None
    match = _DURATION.match(str(value))
    if match is None:
        raise ValueError(f"not a duration: {value!r}")
    unit = match.group(2).lower()
    key = "m" if unit.startswith("month") else unit[0]
    return dt.timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[key])


@dataclass(frozen=True)
class CleanupRules:
    """What to delete: the policy's attributes, or a bulk delete request's parameters."""

    name_regex_delete: str | None = None
    name_regex_keep: str | None = None
    keep_n: int | None = None
    older_than: str | None = None
    keep_latest: bool = True

    @classmethod
    def from_policy(cls, policy: ContainerExpirationPolicy) -> CleanupRules:
        """The rules a policy row holds (its attributes only; nothing is queried)."""
        return cls(
            name_regex_delete=policy.name_regex,
            name_regex_keep=policy.name_regex_keep,
            keep_n=policy.keep_n,
            older_than=policy.older_than,
        )

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> CleanupRules:
        """From task arguments (``as_params``); ``name_regex`` is the old delete name."""
        keep_n = params.get("keep_n")
        return cls(
            name_regex_delete=params.get("name_regex_delete") or params.get("name_regex"),
            name_regex_keep=params.get("name_regex_keep"),
            keep_n=int(keep_n) if keep_n is not None else None,
            older_than=params.get("older_than"),
        )

    def as_params(self) -> dict[str, Any]:
        return {
            "name_regex_delete": self.name_regex_delete,
            "name_regex_keep": self.name_regex_keep,
            "keep_n": self.keep_n,
            "older_than": self.older_than,
        }

    def compile(self) -> CompiledRules:
        """Raises ``InvalidCleanupRules`` naming the bad parameter."""
        try:
            delete_re = _compile(self.name_regex_delete)
        except ValueError as exc:
            raise InvalidCleanupRules(f"name_regex_delete: {exc}") from None
        try:
            keep_re = _compile(self.name_regex_keep)
        except ValueError as exc:
            raise InvalidCleanupRules(f"name_regex_keep: {exc}") from None
        try:
            older_than = parse_older_than(self.older_than)
        except ValueError as exc:
            raise InvalidCleanupRules(f"older_than: {exc}") from None
        if self.keep_n is not None and self.keep_n < 0:
            raise InvalidCleanupRules("keep_n: must not be negative")
        return CompiledRules(self, delete_re, keep_re, older_than)


def _compile(pattern: str | None) -> AnchoredRegex | None:
    return compile_anchored(pattern) if pattern and pattern.strip() else None


@dataclass(frozen=True)
class CompiledRules:
    rules: CleanupRules
    delete_re: AnchoredRegex | None
    keep_re: AnchoredRegex | None
    older_than: dt.timedelta | None

    @property
    def keep_n(self) -> int | None:
        return self.rules.keep_n

    @property
    def needs_created_at(self) -> bool:
        return self.keep_n is not None or self.older_than is not None


@dataclass(frozen=True)
class TagDecision:
    """One tag of a plan: deleted or kept, and the rule that decided it."""

    name: str
    delete: bool
    rule: str
    reason: str
    created_at: dt.datetime | None = None

    @property
    def decision(self) -> str:
        return "delete" if self.delete else "keep"


def filter_names(names: Iterable[str], compiled: CompiledRules) -> tuple[list[str], list[TagDecision]]:
    """Split tag names into deletion candidates and tags kept by name (steps 1-2)."""
    candidates: list[str] = []
    kept: list[TagDecision] = []
    for name in names:
        if compiled.rules.keep_latest and name == "latest":
            kept.append(TagDecision(name, False, RULE_LATEST, "the tag latest is never deleted"))
        elif compiled.delete_re is None or not compiled.delete_re.matches(name):
            kept.append(TagDecision(name, False, RULE_NAME_REGEX_DELETE, "does not match the delete regex"))
        elif compiled.keep_re is not None and compiled.keep_re.matches(name):
            kept.append(TagDecision(name, False, RULE_NAME_REGEX_KEEP, "matches the keep regex"))
        else:
            candidates.append(name)
    return candidates, kept


def decide_by_age(
    created: Mapping[str, dt.datetime | None], compiled: CompiledRules, *, now: dt.datetime
) -> list[TagDecision]:
    """Decide the candidates (steps 3-4), given their creation times (None = unknown)."""
    decisions: list[TagDecision] = []
    remaining = sorted(created)
    keep_n = compiled.keep_n
    if keep_n is not None:
        # Newest first; an unknown time counts as now. Name breaks ties, so plans repeat.
        remaining.sort(key=lambda n: (created[n] or now, n), reverse=True)
        for name in remaining[:keep_n]:
            decisions.append(TagDecision(name, False, RULE_KEEP_N, f"one of the {keep_n} newest", created[name]))
        remaining = remaining[keep_n:]
    limit = now - compiled.older_than if compiled.older_than is not None else None
    label = compiled.rules.older_than
    for name in remaining:
        stamp = created[name]
        if limit is not None and stamp is None:
            decisions.append(TagDecision(name, False, RULE_CREATED_AT_UNKNOWN, "creation time unknown", None))
        elif limit is not None and stamp >= limit:
            decisions.append(TagDecision(name, False, RULE_OLDER_THAN, f"younger than {label}", stamp))
        elif limit is not None:
            decisions.append(TagDecision(name, True, RULE_OLDER_THAN, f"older than {label}", stamp))
        elif keep_n is not None:
            decisions.append(TagDecision(name, True, RULE_KEEP_N, f"not one of the {keep_n} newest", stamp))
        else:
            decisions.append(TagDecision(name, True, RULE_NAME_REGEX_DELETE, "matches the delete regex", stamp))
    return decisions


def plan_tags(
    tags: Mapping[str, dt.datetime | None], rules: CleanupRules | CompiledRules, *, now: dt.datetime
) -> list[TagDecision]:
    """Every tag with its decision, sorted by name (no limits apply)."""
    compiled = rules.compile() if isinstance(rules, CleanupRules) else rules
    candidates, kept = filter_names(tags, compiled)
    decided = decide_by_age({name: tags[name] for name in candidates}, compiled, now=now)
    return sorted([*kept, *decided], key=lambda d: d.name)


def deletion_order(decisions: Iterable[TagDecision]) -> list[TagDecision]:
    """Tags to delete, oldest first (unknown creation times last)."""
    far_future = dt.datetime.max.replace(tzinfo=dt.UTC)
    return sorted((d for d in decisions if d.delete), key=lambda d: (d.created_at or far_future, d.name))


def limit_deletions(names: list[str], max_list_size: int) -> tuple[list[str], bool]:
    """The first ``max_list_size`` of ``names`` (0 = no limit), and whether any were cut."""
    if 0 < max_list_size < len(names):
        return names[:max_list_size], True
    return names, False


def kept_until(
    decisions: Iterable[TagDecision], compiled: CompiledRules, *, now: dt.datetime
) -> dict[int, dict[str, dt.datetime]]:
    """Creation times of kept tags by the seconds the keep decision still holds (GitLab's
    cache TTL: older_than - age), so that a remembered time can only ever keep a tag.
    Empty without ``older_than``."""
    if compiled.older_than is None:
        return {}
    by_ttl: dict[int, dict[str, dt.datetime]] = {}
    for decision in decisions:
        if decision.delete or decision.created_at is None:
            continue
        ttl = int((compiled.older_than - (now - decision.created_at)).total_seconds())
        if ttl > 0:
            by_ttl.setdefault(ttl, {})[decision.name] = decision.created_at
    return by_ttl


@dataclass(frozen=True)
class Brake:
    """The mass-deletion brake of a policy's first run under a changed policy: it trips
    when the run would delete more than ``max_tags`` tags (0 = no limit by count) or
    more than ``max_percent`` percent of the repository's tags (0 = no limit by share)."""

    max_tags: int
    max_percent: int

    def trips(self, *, delete: int, total: int) -> bool:
        if self.max_tags > 0 and delete > self.max_tags:
            return True
        return 0 < self.max_percent < 100 and total > 0 and delete * 100 > self.max_percent * total
