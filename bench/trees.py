"""Source trees for benchmarks that compare two checkouts in one run (``--tree``).

A tree is a checkout of this project with its own ``.venv`` (a symlink to a shared
virtualenv is fine) and ``scripts/web.sh``: its server is started from it, the
production way, against the benchmark's one database. The database is migrated by the
tree whose migrations include every other tree's (the newest).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

BENCH_ROOT = Path(__file__).resolve().parents[1]


def resolve(paths: list[str] | None) -> list[Path]:
    """The ``--tree`` arguments as checked absolute paths (default: this checkout)."""
    trees = [Path(p).resolve() for p in paths] if paths else [BENCH_ROOT]
    for tree in trees:
        for needed in ("manage.py", "scripts/web.sh", ".venv/bin/python", ".venv/bin/granian"):
            if not (tree / needed).exists():
                raise SystemExit(f"--tree {tree}: {needed} is missing")
    if len(set(trees)) != len(trees):
        raise SystemExit("--tree: the same tree is given twice")
    return trees


def python(tree: Path) -> str:
    return str(tree / ".venv" / "bin" / "python")


def label(tree: Path, trees: list[Path]) -> str:
    """A short name for tables: the last path component, or ``A``/``B``... when two
    trees end alike."""
    names = [t.name for t in trees]
    if len(set(names)) == len(names):
        return tree.name
    return chr(ord("A") + trees.index(tree))


def migrations(tree: Path) -> dict[str, str]:
    """Relative path -> content digest of every migration file of the tree."""
    found = {}
    for path in sorted(tree.glob("*/migrations/[0-9]*.py")):
        found[str(path.relative_to(tree))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def migrating_tree(trees: list[Path], forced: str | None = None) -> Path:
    """The tree to migrate (and seed) with: ``forced``, else the one whose migrations
    include every other tree's; warns on stderr when none does, or when a migration
    file of the same name differs between trees."""
    if forced:
        return Path(forced).resolve()
    sets = {tree: migrations(tree) for tree in trees}
    for tree in trees:
        for other in trees:
            differing = [
                name for name, digest in sets[other].items() if name in sets[tree] and sets[tree][name] != digest
            ]
            if other != tree and differing and trees.index(tree) < trees.index(other):
                print(f"warning: migrations differ between {tree} and {other}: {differing[:5]}", file=sys.stderr)
    for tree in sorted(trees, key=lambda t: -len(sets[t])):
        if all(set(sets[other]) <= set(sets[tree]) for other in trees):
            return tree
    newest = max(trees, key=lambda t: len(sets[t]))
    print(
        f"warning: no tree has every other tree's migrations; migrating with {newest} (the most). "
        "Use --migrate-tree to choose.",
        file=sys.stderr,
    )
    return newest
