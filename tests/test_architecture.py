"""The layout ARCHITECTURE.md describes: one installed namespace, and imports that point one
way (entry points -> algorithms -> families -> RL / few-shot / run layers -> core) with no
import circle. Read from the source with ``ast``: nothing is imported to check it."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "metarl"

# Rank of each layer: a module may import its own layer and lower ranks only. The three
# middle layers are peers that must not import one another.
LAYERS: dict[str, int] = {
    "metarl.core": 0,
    "metarl.rl": 1,
    "metarl.fewshot": 1,
    "metarl.run": 1,
    "metarl.envs": 2,
    "metarl.agents": 3,
    "metarl": 4,  # the package's public API and the entry points (train, evaluate, list)
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer(module: str) -> str:
    """The layer a module belongs to: the longest prefix in :data:`LAYERS`."""
    return max((k for k in LAYERS if module == k or module.startswith(k + ".")), key=len)


def _type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(module: str) -> set[str]:
    """The metarl modules ``module`` imports at run time, at module level or inside functions."""
    tree = ast.parse(MODULES[module].read_text())
    skip = {id(n) for block in ast.walk(tree) if _type_checking_block(block) for n in ast.walk(block)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from metarl.envs import omniglot_oneshot`` imports the submodule.
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                     for a in node.names]
        else:
            continue
        found |= {n for n in names if n == "metarl" or n.startswith("metarl.")}
    return found - {module}


GRAPH = {m: imports_of(m) for m in MODULES}


def test_every_import_points_down_the_layers():
    upward = []
    for module, targets in GRAPH.items():
        if layer(module) == "metarl":
            continue  # the public API and the entry points may import anything
        for target in targets:
            a, b = layer(module), layer(target)
            if a != b and LAYERS[b] >= LAYERS[a]:
                upward.append(f"{module} imports {target} ({a} -> {b})")
    assert not upward, "imports against the layering of ARCHITECTURE.md:\n" + "\n".join(sorted(upward))


def test_the_import_graph_has_no_circle():
    # Tarjan's strongly connected components: any component of two or more modules is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v] & MODULES.keys():
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


def test_the_layer_check_sees_an_upward_import():
    # The graph is read correctly: a known downward import is found, and an upward one
    # would be reported (the family modules do import the RL layer).
    assert "metarl.rl.array_family" in GRAPH["metarl.envs.bandit"]
    assert LAYERS[layer("metarl.envs.bandit")] > LAYERS[layer("metarl.rl.array_family")]
    assert layer("metarl.agents.rl2") == "metarl.agents" and layer("metarl.train") == "metarl"


@pytest.mark.slow
def test_the_wheel_installs_only_the_metarl_package(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True)
    (wheel,) = tmp_path.glob("metarl-*.whl")
    with zipfile.ZipFile(wheel) as z:
        top = {name.split("/")[0] for name in z.namelist()}
        packages = {name.rsplit("/", 1)[0] for name in z.namelist() if name.endswith("/__init__.py")}
    assert {t for t in top if not t.endswith(".dist-info")} == {"metarl"}
    for sub in ("metarl/core", "metarl/rl", "metarl/fewshot", "metarl/run", "metarl/envs", "metarl/agents"):
        assert sub in packages, sorted(packages)
