"""The architecture the README draws, checked: layers without circles, no reach-ins."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "qdataset"


def test_layers_import_only_the_layers_below_them():
    """import-linter's layers contract in pyproject.toml; a new circle fails CI here."""
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.fail("lint-imports is missing: pip install -e '.[test]' installs import-linter")
    done = subprocess.run([lint], cwd=PACKAGE.parent, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 kept, 0 broken" in done.stdout


#: Underscore names that are public API elsewhere: namedtuple's methods, and the
#: type of argparse's sub-parser object (no public name exists for annotating it).
PUBLIC_UNDERSCORE = {"_replace", "_asdict", "_fields", "_SubParsersAction"}


def private_reach_ins(source: str) -> list[tuple[int, str]]:
    """``obj._name`` reaching into another class's private attribute.

    Allowed: ``self._x``/``cls._x``; dunders; inside a class, private names that
    class defines itself (``other._key`` in ``__eq__``, ``new._x`` in a
    classmethod building an instance of its own class).
    """
    found = []

    def own_names(cls: ast.ClassDef) -> set[str]:
        names = set()
        for node in ast.walk(cls):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
            elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                  and node.value.id == "self" and isinstance(node.ctx, ast.Store)):
                names.add(node.attr)
        return names

    def visit(node: ast.AST, allowed: frozenset[str]) -> None:
        if isinstance(node, ast.ClassDef):
            allowed = allowed | own_names(node)
        if isinstance(node, ast.Attribute):
            name = node.attr
            private = name.startswith("_") and not (name.startswith("__")
                                                    and name.endswith("__"))
            mine = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            if private and not mine and name not in allowed and name not in PUBLIC_UNDERSCORE:
                found.append((node.lineno, ast.unparse(node)))
        for child in ast.iter_child_nodes(node):
            visit(child, allowed)

    visit(ast.parse(source), frozenset())
    return sorted(found)


def test_reach_in_detector_finds_what_it_should():
    sample = ("a = store._storage\nb = self._x\nc = obj.__class__\nd = ds._run.pk\n"
              "class K:\n    def f(self, other):\n        self._k = 1\n"
              "        return other._k, other._storage\n")
    assert private_reach_ins(sample) == [(1, "store._storage"), (4, "ds._run"),
                                         (8, "other._storage")]


def test_no_module_outside_the_storage_package_reaches_into_private_attributes():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "store":
            continue  # the storage package is one unit behind its public seams
        for line, text in private_reach_ins(path.read_text()):
            offenders.append(f"qdataset/{relative}:{line}: {text}")
    assert offenders == []
