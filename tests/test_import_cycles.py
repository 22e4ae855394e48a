"""No import circle among quickfit's modules.

What counts as "module A imports module B" (an edge A -> B of the graph that must have no cycle):
- every `import` statement in A's source, at module level and inside functions or classes alike
  (a lazy import inside a function only hides a circle until the function runs); imports under
  `if TYPE_CHECKING:` are left out, as they never run;
- `import quickfit.x.y` and `from quickfit.x import y` where `quickfit.x.y` is a module: an edge to
  `quickfit.x.y`; `from quickfit.x import name` where `name` is not a module: an edge to `quickfit.x`
  (the package's `__init__`, which must have finished to provide `name`). Relative imports likewise;
- not the parent packages Python initializes first (`import quickfit.x.y` runs `quickfit/__init__.py`
  and `quickfit/x/__init__.py` before it): counting them would make every package that exports its
  submodules' names a circle. A package importing its submodules is fine; a submodule importing a
  name back from its package's `__init__` is a circle, and counted.
Modules outside quickfit are not nodes. A module importing itself is ignored.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "quickfit"


def module_names() -> dict[str, Path]:
    out = {}
    for f in sorted(PACKAGE.rglob("*.py")):
        parts = list(f.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (
        isinstance(test, ast.Name)
        and test.id == "TYPE_CHECKING"
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _imports(tree: ast.AST, top_level: bool = False):
    """Every Import / ImportFrom node, skipping `if TYPE_CHECKING:` bodies (and with `top_level`, the
    bodies of functions: what runs when the module is imported)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        children = list(ast.iter_child_nodes(node))
        if isinstance(node, ast.If) and _is_type_checking(node):
            children = node.orelse
        if top_level and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            children = []
        stack.extend(children)


def imports_of(name: str, path: Path, modules: dict[str, Path], top_level: bool = False) -> set[str]:
    is_package = path.name == "__init__.py"
    found = set()
    for node in _imports(ast.parse(path.read_text(), str(path)), top_level):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            base = node.module or ""
            if node.level:  # relative: from the module's package, `level - 1` packages up
                pkg = name.split(".") if is_package else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join([*pkg, base] if base else pkg)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        for t in targets:
            while t and t not in modules:  # `import quickfit.x.y` of something that is no module: its parent
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def import_graph(top_level: bool = False) -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports_of(name, path, modules, top_level) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle `[a, b, ..., a]` of `graph`, or None (depth-first search, iterative)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, iters = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while path:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_the_graph_sees_the_imports():
    graph = import_graph()
    assert "quickfit.learner" in graph and "quickfit.callbacks.core" in graph["quickfit.learner"]
    assert "quickfit.env" in graph["quickfit.callbacks.distributed"]  # `from quickfit import env`: the submodule
    assert "quickfit" not in graph["quickfit.callbacks.distributed"]


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_relative_and_lazy_imports_count(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .a import f\n")
    (pkg / "a.py").write_text("def f():\n    from . import b\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n")
    modules = {"pkg": pkg / "__init__.py", "pkg.a": pkg / "a.py", "pkg.b": pkg / "b.py"}
    assert imports_of("pkg", modules["pkg"], modules) == {"pkg.a"}
    assert imports_of("pkg.a", modules["pkg.a"], modules) == {"pkg.b"}
    assert imports_of("pkg.b", modules["pkg.b"], modules) == set()


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def with_package_inits(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """`graph` plus the package `__init__`s an import runs first: `import quickfit.a.b.c` from a module
    outside `quickfit.a` runs `quickfit/a/__init__.py` (and `quickfit/a/b/__init__.py`) before `c`. The
    importer's own ancestors are left out (they are already initializing), and so is `quickfit` itself."""
    out = {}
    for name, targets in graph.items():
        own = {name.rsplit(".", k)[0] for k in range(1, name.count(".") + 1)}
        extra = set()
        for t in targets:
            parts = t.split(".")
            for k in range(2, len(parts)):
                parent = ".".join(parts[:k])
                if parent not in own and parent in graph:
                    extra.add(parent)
        out[name] = targets | extra - {name}
    return out


def test_with_package_inits_sees_the_parent_package():
    graph = {"r": set(), "r.p": {"r.p.a"}, "r.p.a": set(), "r.q": set(), "r.q.b": {"r.p.a"}, "r.p.c": {"r.p.a"}}
    assert with_package_inits(graph)["r.q.b"] == {"r.p.a", "r.p"}
    assert with_package_inits(graph)["r.p.c"] == {"r.p.a"}  # its own package is already initializing


def test_no_import_cycle_through_package_inits():
    # Importing quickfit.gan first once failed this way: gan.learner -> vision.core.image_grid runs
    # quickfit/vision/__init__.py, which imports quickfit.gan.learner while it is still initializing.
    # Imports inside functions run after every package has initialized: only module-level ones count.
    cycle = find_cycle(with_package_inits(import_graph(top_level=True)))
    assert cycle is None, "import circle through a package's __init__: " + " -> ".join(cycle)
