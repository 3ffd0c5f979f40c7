"""Data flows one way (catalogue -> embedder -> store -> recommender -> CLI / API / web): no import cycle between
fashionrec's modules, counting imports inside functions too, and no module imports a layer above its own."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "fashionrec"

# Every module's layer, lowest first (a package counts for all its modules): a module imports only modules of its own
# layer or below. The picture of docs/architecture.md, as a table the test holds the code to.
LAYERS: dict[str, tuple[str, ...]] = {
    "base": ("fashionrec", "fashionrec.errors", "fashionrec.atomic", "fashionrec.vectors", "fashionrec.split",
             "fashionrec.result", "fashionrec.imageio", "fashionrec.artifact", "fashionrec.runtime",
             "fashionrec.manifest", "fashionrec.columns", "fashionrec.filters", "fashionrec.feedback",
             "fashionrec.localise", "fashionrec.augment", "fashionrec.charts", "fashionrec.weights"),
    "catalogue": ("fashionrec.catalog", "fashionrec.catalog_db"),
    "embedder": ("fashionrec.embedders", "fashionrec.modelspec", "fashionrec.garments", "fashionrec.kinds",
                 "fashionrec.street"),
    "store": ("fashionrec.stores", "fashionrec.head", "fashionrec.publish"),
    "index": ("fashionrec.index", "fashionrec.indexing", "fashionrec.duplicates", "fashionrec.engines"),
    "query": ("fashionrec.query", "fashionrec.hybrid", "fashionrec.ranking", "fashionrec.look"),
    "recommender": ("fashionrec.recommend", "fashionrec.live", "fashionrec.text", "fashionrec.trends",
                    "fashionrec.contact_sheet"),
    "training": ("fashionrec.backbone_train", "fashionrec.train", "fashionrec.garment_train", "fashionrec.kind_train"),
    "evaluation": ("fashionrec.evaluate", "fashionrec.eval_report", "fashionrec.street_eval"),
    "edge": ("fashionrec.config", "fashionrec.api", "fashionrec.web", "fashionrec.cli", "fashionrec.__main__"),
}
# Imports that go up the table today, each with why it stays for now; the test fails on any other, and on an entry
# here that is no longer needed.
KNOWN_UPWARD = {
    "fashionrec.ranking -> fashionrec.config": "RankingConfig's defaults are read from config.VARIABLES",
}


def layer_of(module: str) -> int:
    """The position in LAYERS of the longest entry naming ``module`` or a package above it."""
    best, found = -1, None
    for n, members in enumerate(LAYERS.values()):
        for member in members:
            if (module == member or module.startswith(member + ".")) and len(member) > best:
                best, found = len(member), n
    assert found is not None, f"{module} is in no layer of LAYERS (tests/test_layering.py): add it"
    return found


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


def test_every_module_has_a_layer_and_imports_none_above_it() -> None:
    edges = graph()
    assert "fashionrec.train" in edges and "fashionrec.columns" in edges
    upward = {f"{m} -> {d}" for m, deps in edges.items() for d in deps if layer_of(d) > layer_of(m)}
    assert upward - set(KNOWN_UPWARD) == set(), sorted(upward - set(KNOWN_UPWARD))
    assert set(KNOWN_UPWARD) <= upward, f"no longer needed in KNOWN_UPWARD: {sorted(set(KNOWN_UPWARD) - upward)}"


def test_the_layer_table_catches_an_upward_import() -> None:
    assert layer_of("fashionrec.stores.faiss_store") < layer_of("fashionrec.recommend") < layer_of("fashionrec.cli.main")
    assert layer_of("fashionrec.evaluate") > layer_of("fashionrec.train")  # training never imports evaluation
