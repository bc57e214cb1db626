"""The shape of the code base, checked from the source with `ast` (nothing is imported):

- no import cycle between the subpackages of tinybert_core (text, data, models, distillation,
  training, evaluation and the top-level modules), counting imports inside functions too, so a
  lazy import cannot hide one; nor between the modules of tinybert_core, backends or cli
  (autograd keeps one on purpose: a Tensor's operators apply Functions and Function.apply
  makes Tensors, tied by the late import at the end of function.py);
- the pipeline's direction: nothing in autograd/ or backends/ imports tinybert_core or cli, and
  nothing in tinybert_core imports cli;
- no module in autograd/, backends/, tinybert_core/ or cli/ over 500 lines.
"""
from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest
from paths import ROOT

PACKAGES = ("autograd", "backends", "tinybert_core", "cli")
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the four packages."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The project modules `name` imports, anywhere in the file (absolute or relative)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import mod` imports pkg.mod when that is a module, else pkg.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _unit(module: str) -> str:
    """tinybert_core's unit of layering: its subpackage, or the top-level module itself."""
    parts = module.split(".")
    return ".".join(parts[:2])


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` (as a path that returns to its start), or None; iterative DFS."""
    state: dict[str, int] = {}                                 # 1 on the stack, 2 done
    for root in sorted(graph):
        if state.get(root):
            continue
        stack: list[tuple[str, Iterable[str]]] = [(root, iter(sorted(graph[root])))]
        path = [root]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
                continue
            if state.get(child) == 1:
                return path[path.index(child):] + [child]
            if not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(graph.get(child, ())))))
    return None


def test_the_import_graph_sees_the_packages():
    assert "tinybert_core.models.tasks" in MODULES and "autograd.tensor" in MODULES
    assert "tinybert_core.models.mobilebert" in GRAPH["tinybert_core.models.tasks"]
    assert "tinybert_core.text.tokenization" in GRAPH["tinybert_core.data.corpus"]


def test_no_cycle_between_tinybert_core_subpackages():
    units: dict[str, set[str]] = {}
    for name, targets in GRAPH.items():
        if not name.startswith("tinybert_core.") or name.count(".") == 0:
            continue
        unit = _unit(name)
        edges = units.setdefault(unit, set())
        for target in targets:
            if target.startswith("tinybert_core.") and _unit(target) != unit:
                edges.add(_unit(target))
    assert {"tinybert_core.models", "tinybert_core.data", "tinybert_core.training"} <= set(units)
    cycle = _cycle(units)
    assert cycle is None, "import cycle between tinybert_core subpackages: " + " -> ".join(cycle)


@pytest.mark.parametrize("package", ["tinybert_core", "backends", "cli"])
def test_no_cycle_between_the_modules_of_a_package(package):
    # Package __init__ files only re-export, and importing a submodule runs them anyway.
    graph = {name: {t for t in targets if t.split(".")[0] == package and t != package}
             for name, targets in GRAPH.items()
             if name.split(".")[0] == package and name != package}
    cycle = _cycle(graph)
    assert cycle is None, f"import cycle in {package}: " + " -> ".join(cycle)


@pytest.mark.parametrize("lower, upper", [("autograd", ("tinybert_core", "cli")),
                                          ("backends", ("tinybert_core", "cli")),
                                          ("tinybert_core", ("cli",))])
def test_lower_layers_do_not_import_upper_ones(lower, upper):
    wrong = {name: sorted(t for t in targets if t.split(".")[0] in upper)
             for name, targets in GRAPH.items() if name.split(".")[0] == lower}
    assert not {k: v for k, v in wrong.items() if v}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_over_500_lines(name):
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name].relative_to(ROOT)} has {lines} lines; split it " \
                               f"where it has a seam"
