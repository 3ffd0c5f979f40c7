"""Data flows one way (catalogue -> embedder -> store -> recommender -> CLI / API / web): no import cycle between
fashionrec's modules, counting imports inside functions too, and no module imports a layer above its own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "fashionrec"

# module prefix -> prefixes it must never import (the layers above it)
ABOVE = {
    "fashionrec.embedders": ("fashionrec.stores", "fashionrec.recommend", "fashionrec.api", "fashionrec.cli",
                             "fashionrec.web", "fashionrec.indexing"),
    "fashionrec.stores": ("fashionrec.recommend", "fashionrec.api", "fashionrec.cli", "fashionrec.web"),
    "fashionrec.recommend": ("fashionrec.api", "fashionrec.cli", "fashionrec.web"),
    "fashionrec.hybrid": ("fashionrec.recommend", "fashionrec.api", "fashionrec.cli"),
    "fashionrec.garments": ("fashionrec.stores", "fashionrec.recommend", "fashionrec.api", "fashionrec.cli",
                            "fashionrec.web", "fashionrec.indexing", "fashionrec.index"),
    "fashionrec.kinds": ("fashionrec.stores", "fashionrec.recommend", "fashionrec.api", "fashionrec.cli",
                         "fashionrec.web", "fashionrec.indexing", "fashionrec.index"),
    "fashionrec.look": ("fashionrec.recommend", "fashionrec.api", "fashionrec.cli", "fashionrec.web"),
    "fashionrec.street_eval": ("fashionrec.api", "fashionrec.cli", "fashionrec.web"),
    "fashionrec.result": ("fashionrec.",),
    "fashionrec.api": ("fashionrec.cli",),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every fashionrec module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.startswith("fashionrec"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("fashionrec"))
    return {m for m in found if m in modules}


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    # importing a submodule runs its package's __init__: an edge to one's own parent package is not a dependency
    return {name: {d for d in imports_of(path, modules) if d != name and not name.startswith(d + ".")}
            for name, path in paths.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles() -> None:
    edges = graph()
    assert len(edges) > 50 and "fashionrec.recommend" in edges["fashionrec.api.service"] | edges["fashionrec.api.app"]
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges) or [])


@pytest.mark.parametrize("layer", sorted(ABOVE))
def test_no_module_imports_a_layer_above_its_own(layer: str) -> None:
    edges = graph()
    members = [m for m in edges if m == layer or m.startswith(layer + ".")]
    assert members
    upward = {f"{m} -> {d}" for m in members for d in edges[m] if d.startswith(ABOVE[layer])}
    assert not upward, sorted(upward)
