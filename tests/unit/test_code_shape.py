"""The shape the code keeps: sizes that flag a module doing too much, no import cycle, a map that is true.

The size limits are a smell detector, not a goal: a module past 330 lines or a class past 220 has, every time
so far, held two things that change for different reasons. A cycle means two modules cannot be understood (or
imported) one without the other. README's "Where the code is" is the first thing a newcomer reads, so every
module it should name is held to be there.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "layers" / "core"
MODULE_LINES = 330
CLASS_LINES = 220


def _sources() -> list[Path]:
    found = [
        *(CORE / "batchline").rglob("*.py"),
        *(ROOT / "functions").rglob("*.py"),
        *(ROOT / "localcloud").rglob("*.py"),
    ]
    return sorted(p for p in found if "__pycache__" not in p.parts)


def _module_name(path: Path) -> str:
    """The name a module is imported by: the core from layers/core, the api's routes from functions/api."""
    base = CORE if path.is_relative_to(CORE) else ROOT
    if path.is_relative_to(ROOT / "functions"):
        base = path.parents[len(path.relative_to(ROOT / "functions").parts) - 2]
    parts = list(path.relative_to(base).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str) -> set[str]:
    """Every module `path` imports, at its top or inside a function (a lazy import still ties the two)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    named: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            named.add(base)
            named.update(f"{base}.{alias.name}" for alias in node.names)
    return named


def _graph() -> dict[str, set[str]]:
    # functions/<name>/app.py are all `app`: only the api's routes package can be imported by another module
    modules = {_module_name(p): p for p in _sources() if p.name != "app.py"}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for imported in _imports(path, name):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            # a module importing its own package (or a package its own submodule) is not a cycle of meaning
            if (
                imported
                and imported != name
                and not name.startswith(f"{imported}.")
                and not imported.startswith(f"{name}.")
            ):
                edges.add(imported)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for edge in edges:
                if edge not in index:
                    index[edge] = low[edge] = len(index)
                    stack.append(edge)
                    on_stack.add(edge)
                    work.append((edge, iter(sorted(graph[edge]))))
                    break
                if edge in on_stack:
                    low[node] = min(low[node], index[edge])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_no_module_or_class_past_its_limit() -> None:
    too_large = []
    for path in _sources():
        source = path.read_text()
        where = path.relative_to(ROOT)
        if (lines := len(source.splitlines())) > MODULE_LINES:
            too_large.append(f"{where}: {lines} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef) and (lines := node.end_lineno - node.lineno + 1) > CLASS_LINES:  # type: ignore[operator]
                too_large.append(f"{where}: class {node.name} {lines} lines")
    assert too_large == []


def test_no_import_cycle() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_check_sees_a_cycle() -> None:
    # the check itself can fail: a lazy import back is a cycle as much as a top-level one
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _map() -> str:
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"^## Where the code is\n(.*?)^## ", readme, re.DOTALL | re.MULTILINE)
    assert section, "README has no 'Where the code is' section"
    return section.group(1)


@pytest.mark.parametrize("package", [CORE / "batchline", ROOT / "localcloud"], ids=["core", "localcloud"])
def test_the_readme_map_names_every_module(package: Path) -> None:
    text = _map()
    named = set(re.findall(r"[\w/]+\.py|[\w]+/", text))
    stems = {Path(n).name for n in named} | {n.rstrip("/") for n in named}
    missing = [
        p.relative_to(ROOT).as_posix()
        for p in sorted(package.iterdir())
        if (p.suffix == ".py" and p.name != "__init__.py" and p.name not in stems)
        or (p.is_dir() and (p / "__init__.py").exists() and p.name not in stems)
    ]
    assert missing == []
