"""The pipeline's parts stand in one direction: no module of alignkit.conditions imports, at module level (a
``TYPE_CHECKING`` block included), a module that imports it back, directly or through others."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import alignkit.conditions as pkg

PKG = "alignkit.conditions"
FOLDER = Path(pkg.__file__).parent
MODULES = sorted(p.stem for p in FOLDER.glob("*.py"))


def _module_level_imports(tree: ast.Module) -> list[ast.stmt]:
    """Import statements outside functions and classes (inside ``if`` / ``try`` blocks too)."""
    out, todo = [], list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        elif isinstance(node, (ast.If, ast.Try)):
            todo += node.body + node.orelse + getattr(node, "finalbody", []) + [
                s for h in getattr(node, "handlers", []) for s in h.body]
    return out


def _edges(name: str) -> set[str]:
    """The sibling modules ``name`` imports at module level ('__init__' for the package's own names)."""
    tree = ast.parse((FOLDER / f"{name}.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in _module_level_imports(tree):
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        else:
            mods = [node.module or ""]
            if node.module == PKG:  # from alignkit.conditions import x: a submodule, or a name of __init__
                found |= {a.name if a.name in MODULES else "__init__" for a in node.names}
                continue
        for m in mods:
            if m.startswith(PKG + "."):
                found.add(m[len(PKG) + 1:].split(".")[0])
    found.discard(name)
    return found


GRAPH = {m: _edges(m) for m in MODULES}


def _cycle() -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(GRAPH.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in MODULES:
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_no_import_cycle_between_conditions_modules():
    assert "config" in MODULES and "context" in MODULES
    assert _cycle() is None, " -> ".join(_cycle())


def test_config_context_evaluate_stand_in_one_direction():
    """The circle of issue 26: context needed EvaluateConfig from evaluate, which imports context."""
    assert "evaluate" not in GRAPH["context"] and "config" in GRAPH["context"]
    assert {"config", "context"} <= GRAPH["evaluate"]
    assert GRAPH["config"] <= {"registry"}  # the config needs nothing of the pipeline


def test_the_graph_check_sees_a_cycle(monkeypatch):
    """The checker itself finds a cycle when one is there (context importing evaluate back)."""
    monkeypatch.setitem(GRAPH, "context", GRAPH["context"] | {"evaluate"})
    assert _cycle() is not None


def test_every_module_imports_in_dependency_order_in_a_fresh_interpreter():
    """Leaves first: each module imported, in an order where its sibling imports come before it, in a fresh
    interpreter (sys.modules starts empty of alignkit)."""
    order: list[str] = []

    def place(m: str) -> None:
        if m in order:
            return
        for n in sorted(GRAPH[m]):
            place(n)
        order.append(m)

    for m in MODULES:
        place(m)
    mods = [PKG if m == "__init__" else f"{PKG}.{m}" for m in order]
    code = "import importlib\nfor m in %r:\n    importlib.import_module(m)\nprint('ok')" % mods
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_evaluate_config_re_exports_are_the_one_class():
    from alignkit.conditions import EvaluateConfig as a
    from alignkit.conditions.config import EvaluateConfig as b
    from alignkit.conditions.evaluate import EvaluateConfig as c

    assert a is b is c
    assert sys.modules[f"{PKG}.evaluate"].EvaluateConfig is b
