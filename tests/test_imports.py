"""The package's layers import only downward, and no modules import each other in a cycle.

Layers, top to bottom (README "Layout"): front ends (``cli``, ``spec``, ``notebook/``, the package
``__init__``) → orchestration (``workflows/``) → engine (``engine/``: Lightning assembly) → model
(``model/``), the physics refinement (``refine/``) and the ptychi runner beside them → physics
and plots → data formats and config vocabulary → the ground floor (atomic writes, metrics, the
kernel probe, the device names, the version, the legacy params dict). A module may import from
its own package and from lower layers only; ``config/`` and ``data/`` share a layer and may not
import each other. Imports inside functions count too: a lazy import up the stack is still an
arrow the wrong way. The one exception: a deprecated module left at an old path may import its
new home (:data:`FORWARDERS`), so code written against the old path keeps working.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PKG = pathlib.Path(__file__).resolve().parents[1] / "ptycho_nb"

#: (rank, group) of each top-level part of the package; higher ranks may import lower ones.
LAYERS: dict[str, tuple[int, str]] = {
    "version": (0, "ground"), "atomic": (0, "ground"), "metrics": (0, "ground"),
    "kernel": (0, "ground"), "params": (0, "ground"), "_torchvision_compat": (0, "ground"),
    "_ptychi_worker": (0, "ground"), "devices": (0, "ground"),
    "config": (1, "config"), "data": (1, "data"),
    "physics": (2, "physics"), "plots": (2, "plots"),
    "model": (3, "model"), "refine": (3, "refine"), "iterative": (3, "iterative"),
    "engine": (4, "engine"),
    "workflows": (5, "workflows"), "pretrained": (5, "workflows"), "diagnostics": (5, "workflows"),
    "cli": (6, "front"), "spec": (6, "front"), "notebook": (6, "front"), "__init__": (6, "front"),
}


#: Deprecated modules at old paths → the package they forward to (and may import, whatever its layer).
FORWARDERS: dict[str, str] = {
    "ptycho_nb.model.refine": "ptycho_nb.refine",
}


def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """Absolute names a ``from ... import ...`` refers to (module or module.attr)."""
    if node.level:
        base = module.split(".")
        if not is_package:
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    # ``from pkg import sub`` names the submodule; ``from mod import name`` names the module.
    return [f"{prefix}.{alias.name}" for alias in node.names] or [prefix]


def import_graph() -> dict[str, set[str]]:
    """Module → the package modules it imports (anywhere in its body)."""
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        is_pkg = path.name == "__init__.py"
        mod = name[: -len(".__init__")] if is_pkg else name
        targets: set[str] = set()
        for node in ast.walk(tree):
            candidates: list[str] = []
            if isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                candidates = _resolve(mod, is_pkg, node)
            if isinstance(node, ast.ImportFrom):
                # names that are not modules of ours are attributes of the module imported from
                candidates = [c if (c in mods or f"{c}.__init__" in mods) else c.rsplit(".", 1)[0]
                              for c in candidates]
            for c in candidates:
                if not c.startswith("ptycho_nb"):
                    continue
                # the longest prefix that is a module of ours: a submodule, or a package's __init__
                parts = c.split(".")
                for k in range(len(parts), 0, -1):
                    cand = ".".join(parts[:k])
                    if cand in mods:
                        targets.add(cand)
                        break
                    if f"{cand}.__init__" in mods:
                        targets.add(f"{cand}.__init__")
                        break
        targets.discard(name)
        graph[name] = targets
    return graph


def _layer(module: str) -> tuple[int, str]:
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else parts[0]
    if key not in LAYERS:
        raise AssertionError(f"{module}: no layer assigned in tests/test_imports.py LAYERS")
    return LAYERS[key]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for src, targets in graph.items():
        rank, group = _layer(src)
        for dst in targets:
            home = FORWARDERS.get(src)
            if home is not None and (dst == home or dst.startswith(home + ".")):
                continue
            r2, g2 = _layer(dst)
            if g2 == group:
                continue
            if r2 >= rank:
                bad.append(f"{src} → {dst} (layer {group}:{rank} imports {g2}:{r2})")
    return sorted(bad)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_module_has_a_layer():
    for name in _modules():
        _layer(name)


def test_no_upward_imports():
    bad = upward_imports(import_graph())
    assert not bad, "imports that run up the layers:\n" + "\n".join(bad)


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" ↔ ".join(c) for c in found)


def test_config_and_data_stay_apart():
    graph = import_graph()
    for src, targets in graph.items():
        group = _layer(src)[1]
        if group in ("config", "data"):
            foreign = {t for t in targets if _layer(t)[1] not in (group, "ground")}
            assert not foreign, f"{src} imports {sorted(foreign)}"


def test_only_front_ends_import_the_notebook_layer():
    graph = import_graph()
    for src, targets in graph.items():
        if any(t.startswith("ptycho_nb.notebook") for t in targets):
            assert _layer(src)[1] == "front", src


def test_forwarders_only_forward():
    """A forwarder is a deprecated module: it warns and re-exports its new home, nothing else."""
    graph = import_graph()
    for src, home in FORWARDERS.items():
        text = (PKG.parent / (src.replace(".", "/") + ".py")).read_text(encoding="utf-8")
        assert "DeprecationWarning" in text, src
        assert graph[src] and all(t == home or t.startswith(home + ".") for t in graph[src]), graph[src]


def test_workflows_import_no_lightning():
    """Orchestration leaves every Lightning object (Trainers, modules, callbacks, seeding) to
    the engine (README "Layout")."""
    found = set()
    for name, path in _modules().items():
        if not name.startswith("ptycho_nb.workflows"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            if any(n.split(".")[0] in ("lightning", "pytorch_lightning") for n in names):
                found.add(name)
    assert not found, (f"workflows modules importing Lightning: {sorted(found)} (build Trainers, "
                       "callbacks and seeds through ptycho_nb.engine)")


@pytest.mark.parametrize("graph,expected", [
    ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
    ({"a": {"b"}, "b": set()}, []),
])
def test_cycle_finder_finds_cycles(graph, expected):
    assert cycles(graph) == expected


def test_upward_finder_flags_an_upward_import():
    graph = {"ptycho_nb.config.x": {"ptycho_nb.workflows.y"}, "ptycho_nb.workflows.y": set()}
    assert upward_imports(graph) == [
        "ptycho_nb.config.x → ptycho_nb.workflows.y (layer config:1 imports workflows:5)"]
