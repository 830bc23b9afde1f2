"""Request parameters the way GitLab's API reads them.

GitLab merges the query string, form bodies and JSON bodies; validation problems of the
request itself are reported together as ``{"error": "a is missing, b is invalid"}``.

    params = Params(request)
    name = params.str("name", required=True, max_length=255)
    admin = params.bool("admin", default=False)
    params.check()   # raises ServiceError(400) when anything above failed
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.utils.dateparse import parse_date, parse_datetime

from gitlab_core.errors import invalid_params
from gitlab_core.text import MAX_INT, clean_text

_TRUE = {"true", "1", "yes", "t", "on", "y"}
_FALSE = {"false", "0", "no", "f", "off", "n"}
_MISSING = object()
# Ids and counters end up in 64-bit columns; a larger number must be a 400, not a
# database overflow.
# A list parameter holds at most this many values: a request's work stays bounded.
MAX_ARRAY_ITEMS = 1_000

__all__ = ["MAX_INT", "Params", "clean_text", "parse_bool"]


def parse_bool(value: Any) -> bool | None:
    """True/False for GitLab's accepted spellings, None when it is not a boolean."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    return None


class Params:
    def __init__(self, request, *, prefix: str = "", data: dict | None = None):
        self._request = request
        self._prefix = prefix
        self._data = data if data is not None else self._merge(request)
        self.errors: list[str] = []

    @staticmethod
    def _merge(request) -> dict:
        merged: dict[str, Any] = {}
        for key in request.query_params:
            values = request.query_params.getlist(key)
            merged[key] = values if key.endswith("[]") or len(values) > 1 else values[0]
        body = request.data
        if isinstance(body, dict) and not hasattr(body, "getlist"):
            merged.update(body)
        elif hasattr(body, "getlist"):
            for key in body:
                values = body.getlist(key)
                merged[key] = values if key.endswith("[]") or len(values) > 1 else values[0]
        elif body not in (None, "", b""):
            # A JSON body that is not an object (a list, a string...).
            raise invalid_params("The request body must be a JSON object")
        return _nest_brackets(merged)

    # --- raw access ------------------------------------------------------------------
    def label(self, name: str) -> str:
        return f"{self._prefix}[{name}]" if self._prefix else name

    def has(self, name: str) -> bool:
        return name in self._data

    def raw(self, name: str, default: Any = None) -> Any:
        return self._data.get(name, default)

    def keys(self) -> Iterable[str]:
        return self._data.keys()

    def nested(self, name: str) -> Params | None:
        """A nested object parameter (``container_expiration_policy_attributes``)."""
        value = self._data.get(name, _MISSING)
        if value is _MISSING or value is None:
            return None
        if not isinstance(value, dict):
            self.errors.append(f"{self.label(name)} is invalid")
            return None
        child = Params(self._request, prefix=self.label(name), data=value)
        child.errors = self.errors  # one list, so check() reports everything
        return child

    # --- typed readers ---------------------------------------------------------------
    def _get(self, name: str, required: bool) -> Any:
        value = self._data.get(name, _MISSING)
        if value is _MISSING:
            if required:
                self.errors.append(f"{self.label(name)} is missing")
            return _MISSING
        return value

    def str(
        self,
        name: str,
        *,
        required: bool = False,
        default: Any = None,
        max_length: int | None = None,
        allow_blank: bool = True,
        nullable: bool = False,
    ) -> Any:
        value = self._get(name, required)
        if value is _MISSING:
            return default
        if value is None and nullable:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or (max_length is not None and len(value) > max_length) or not clean_text(value):
            self.errors.append(f"{self.label(name)} is invalid")
            return default
        if not allow_blank and not value.strip():
            self.errors.append(f"{self.label(name)} is empty" if not required else f"{self.label(name)} is missing")
            return default
        return value

    def bool(self, name: str, *, required: bool = False, default: Any = None) -> Any:
        value = self._get(name, required)
        if value is _MISSING:
            return default
        parsed = parse_bool(value)
        if parsed is None:
            self.errors.append(f"{self.label(name)} is invalid")
            return default
        return parsed

    def int(
        self,
        name: str,
        *,
        required: bool = False,
        default: Any = None,
        minimum: int | None = None,
        maximum: int = MAX_INT,
        nullable: bool = False,
    ) -> Any:
        value = self._get(name, required)
        if value is _MISSING:
            return default
        if value is None and nullable:
            return None
        try:
            if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
                raise ValueError
            number = int(value)
        except (TypeError, ValueError):
            self.errors.append(f"{self.label(name)} is invalid")
            return default
        if (minimum is not None and number < minimum) or number > maximum:
            self.errors.append(f"{self.label(name)} does not have a valid value")
            return default
        return number

    def choice(self, name: str, choices: Iterable, *, required: bool = False, default: Any = None) -> Any:
        value = self._get(name, required)
        if value is _MISSING:
            return default
        if value not in tuple(choices):
            self.errors.append(f"{self.label(name)} does not have a valid value")
            return default
        return value

    def array(self, name: str, *, required: bool = False, default: Any = None) -> Any:
        """A list given as JSON array, ``name[]=a&name[]=b`` or ``name=a,b``."""
        value = self._data.get(name, _MISSING)
        if value is _MISSING:
            value = self._data.get(f"{name}[]", _MISSING)
        if value is _MISSING:
            if required:
                self.errors.append(f"{self.label(name)} is missing")
            return default
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list) and len(value) > MAX_ARRAY_ITEMS:
            self.errors.append(f"{self.label(name)} has too many values (at most {MAX_ARRAY_ITEMS})")
            return default
        if not isinstance(value, list) or not all(
            (isinstance(v, str) and clean_text(v)) or (isinstance(v, int) and not isinstance(v, bool)) for v in value
        ):
            self.errors.append(f"{self.label(name)} is invalid")
            return default
        return [str(v) for v in value]

    def date(self, name: str, *, required: bool = False, default: Any = None, nullable: bool = True) -> Any:
        value = self._get(name, required)
        if value is _MISSING:
            return default
        if value in (None, "") and nullable:
            return None
        parsed = None
        if isinstance(value, str):
            try:
                parsed = parse_date(value)
            except ValueError:
                parsed = None
            if parsed is None:
                try:
                    stamp = parse_datetime(value)
                except ValueError:
                    stamp = None
                parsed = stamp.date() if stamp else None
        if parsed is None:
            self.errors.append(f"{self.label(name)} is invalid")
            return default
        return parsed

    def datetime(self, name: str, *, required: bool = False, default: Any = None, nullable: bool = True) -> Any:
        value = self._get(name, required)
        if value is _MISSING:
            return default
        if value in (None, "") and nullable:
            return None
        parsed = None
        if isinstance(value, str):
            try:
                parsed = parse_datetime(value)
                if parsed is None:
                    day = parse_date(value)
                    parsed = dt.datetime.combine(day, dt.time.min) if day else None
            except ValueError:
                parsed = None
        if parsed is None:
            self.errors.append(f"{self.label(name)} is invalid")
            return default
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        try:
            # Stored in UTC: an offset that pushes the value out of range is bad input.
            parsed = parsed.astimezone(dt.UTC)
        except (OverflowError, ValueError):
            self.errors.append(f"{self.label(name)} is invalid")
            return default
        return parsed

    def require_one_of(self, *names: str) -> None:
        if not any(self.has(n) for n in names):
            self.errors.append(
                f"{', '.join(names)} {'are' if len(names) > 1 else 'is'} missing, "
                "at least one parameter must be provided"
            )

    def check(self) -> None:
        if self.errors:
            raise invalid_params(*dict.fromkeys(self.errors))


def _nest_brackets(flat: dict) -> dict:
    """Turn form keys like ``a[b]=1`` into ``{"a": {"b": "1"}}`` (``a[]`` stays a list)."""
    result: dict[str, Any] = {}
    for key, value in flat.items():
        if "[" in key and key.endswith("]") and not key.endswith("[]"):
            outer, _, inner = key.partition("[")
            target = result.setdefault(outer, {})
            if isinstance(target, dict):
                target[inner[:-1]] = value
            continue
        result[key] = value
    return result
