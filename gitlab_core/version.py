"""This service's version (from ``pyproject.toml``) and revision (``APP_REVISION``), as
``GET /version`` and ``GET /metadata`` report them."""

from __future__ import annotations

import functools
import tomllib

from django.conf import settings


@functools.cache
def version() -> str:
    with (settings.BASE_DIR / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["project"]["version"]


def revision() -> str:
    return settings.APP_REVISION
