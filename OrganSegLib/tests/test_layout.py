"""The library's layout: a few shared modules at the top, one folder per step, and no import running back up.

Imports are read from the source with `ast` (every import, those inside functions too), so the test sees
what would run, not what happened to be imported.
"""
from __future__ import annotations

import ast
from pathlib import Path

import organseg

ROOT = Path(organseg.__file__).parent
#: The front door (`segmenter`, `cli`) and the pieces every step shares.
FRONT_DOOR = {"organseg.segmenter", "organseg.cli"}
SHARED = {"organseg", "organseg.catalogue", "organseg.errors", "organseg.atomic", "organseg.masks"}
#: Folders that are front ends themselves, above the front door: the CLI's commands and the browser review.
FRONT_ENDS = ("organseg.commands.", "organseg.review.")


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The organseg modules a file imports (a name imported from a package counts as its module if it is one)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "organseg":
            out |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                    for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "organseg"}
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) for name, path in modules.items()}


def _folder(module: str) -> str:
    """`organseg.ct.read` -> `organseg.ct`; a top-level module is its own folder."""
    return ".".join(module.split(".")[:2])


def test_the_top_level_holds_at_most_eight_modules():
    top = sorted(p.stem for p in ROOT.glob("*.py"))
    assert len(top) <= 8, top


def test_no_folder_imports_the_front_door_except_the_front_ends():
    upward = {m: sorted(d & FRONT_DOOR) for m, d in _graph().items()
              if m.count(".") >= 2 and not m.startswith(FRONT_ENDS) and d & FRONT_DOOR}
    assert not upward, f"modules in a folder import segmenter/cli: {upward}"


def test_a_module_imports_from_the_top_only_the_shared_pieces():
    top = {m for m in _modules() if m.count(".") == 1} - SHARED
    bad = {m: sorted(d & top) for m, d in _graph().items() if d & top
           and not (m in FRONT_DOOR or m.startswith(FRONT_ENDS))}
    assert not bad, bad


def test_the_import_graph_has_no_cycle_between_modules_or_folders():
    graph = _graph()
    folders: dict[str, set[str]] = {}
    for module, deps in graph.items():
        folders.setdefault(_folder(module), set()).update(_folder(d) for d in deps if _folder(d) != _folder(module))
    for edges in (graph, folders):
        assert _cycle(edges) is None, f"import cycle: {' -> '.join(_cycle(edges))}"


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph as a path back to its start, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt]
            if nxt in edges and nxt not in state and (found := visit(nxt, path + [node])):
                return found
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start, [])):
            return found
    return None
