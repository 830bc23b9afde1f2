"""Imports point one way: ``gitlab_core`` <- ``projects`` <- ``jwt_auth`` <- ``container_registry`` <- ``workers``.

An app may import its own modules and those of the apps below it, never those above.
``container_registry`` sits above ``jwt_auth`` because the registry client signs its own
requests with the realm's token function; the realm never needs the registry app (a
granted push asks for the repository row through ``jwt_auth.signals.push_granted``).
``workers`` holds the Celery tasks, which call the apps' services; no app imports them.

Every ``import`` counts, at module level or inside a function. Tests and migrations are
not checked: tests exercise the whole stack, and migrations are frozen history. The
composition root of the project (settings, root URLs, WSGI, the Celery app) names the
apps by design and is listed in ``COMPOSITION_ROOT``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("gitlab_core", "projects", "jwt_auth", "container_registry", "workers")
RANK = {app: rank for rank, app in enumerate(LAYERS)}
COMPOSITION_ROOT = frozenset(
    {
        "gitlab_core.settings",
        "gitlab_core.urls",
        "gitlab_core.api_urls",
        "gitlab_core.wsgi",
        "gitlab_core.asgi",
        "gitlab_core.celery",
    }
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, *, is_package: bool = False) -> list[tuple[int, str]]:
    """Every module ``source`` imports, with its line: top level, in functions, relative ones resolved."""
    found = []
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                found.append((node.lineno, ".".join([*base, *([node.module] if node.module else [])])))
            else:
                found.append((node.lineno, node.module))
    return found


def upward_imports(module: str, imports: list[tuple[int, str]]) -> list[str]:
    app = module.split(".")[0]
    if module in COMPOSITION_ROOT:
        return []
    return [
        f"{module}:{line} imports {target}"
        for line, target in imports
        if RANK.get(target.split(".")[0], -1) > RANK[app]
    ]


def checked_files():
    for app in LAYERS:
        for path in sorted((ROOT / app).rglob("*.py")):
            parts = path.relative_to(ROOT).parts
            if "tests" in parts or "migrations" in parts:
                continue
            yield path


def test_no_module_imports_an_app_above_its_own():
    offenders = []
    for path in checked_files():
        module = module_name(path)
        source = path.read_text(encoding="utf-8")
        offenders += upward_imports(module, imported_modules(source, module, is_package=path.name == "__init__.py"))

    assert offenders == [], "upward imports:\n" + "\n".join(offenders)


def test_the_check_walks_every_app():
    checked = {module_name(path).split(".")[0] for path in checked_files()}

    assert checked == set(LAYERS)
    assert all((ROOT / (name.replace(".", "/") + ".py")).exists() for name in COMPOSITION_ROOT - {"gitlab_core.asgi"})


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        (
            "gitlab_core.services",
            "from projects.models import Namespace",
            ["gitlab_core.services:1 imports projects.models"],
        ),
        (
            "projects.api.x",
            "def f():\n    import container_registry.policies",
            ["projects.api.x:2 imports container_registry.policies"],
        ),
        (
            "jwt_auth.services",
            "from container_registry import repositories",
            ["jwt_auth.services:1 imports container_registry"],
        ),
        (
            "container_registry.api",
            "from workers.cleanup import cleanup_tags",
            ["container_registry.api:1 imports workers.cleanup"],
        ),
        ("container_registry.client", "from jwt_auth.tokens import mint_registry_token", []),
        ("workers.cleanup", "from container_registry import cleanup\nfrom gitlab_core.celery import app", []),
        ("projects.models", "from . import signals", []),
        ("gitlab_core.wsgi", "from jwt_auth import views", []),
    ],
)
def test_an_import_is_upward_when_it_names_a_higher_app(module, source, expected):
    assert upward_imports(module, imported_modules(source, module)) == expected


def test_a_relative_import_resolves_against_its_package():
    assert imported_modules("from . import signals", "projects.models") == [(1, "projects")]
    assert imported_modules("from .rules import x", "container_registry.cleanup", is_package=True) == [
        (1, "container_registry.cleanup.rules")
    ]


def test_services_and_selectors_take_their_errors_from_outside_the_api_package():
    offenders = []
    for path in checked_files():
        if path.stem not in {"services", "selectors", "policies", "receivers"}:
            continue
        module = module_name(path)
        imports = imported_modules(path.read_text(encoding="utf-8"), module)
        offenders += [
            f"{module}:{line} imports {target}" for line, target in imports if target == "gitlab_core.api.errors"
        ]

    assert offenders == []
