"""The import rules that keep the layers apart, checked on the source (every import, lazy ones too).

- no import circle among harness/ and models/ modules;
- models/ imports nothing of harness/; harness/data/ nothing of harness/ outside harness/data/;
- ray only under harness/tune/, mlflow only under harness/tracking/;
- a stage imports neither another stage nor the pipeline that walks them;
- no module over 400 lines (the whole tree reads in small files).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted(p for folder in ("harness", "models") for p in (ROOT / folder).rglob("*.py"))
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in FILES}


def imports(path: Path) -> set[str]:
    """Every module `path` imports, resolved to our module names where it is one of ours."""
    out: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            out.add(base)
            # `from harness import tracking` imports the module harness.tracking
            out |= {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES}
    return out


def ours(names: set[str]) -> set[str]:
    return {n for n in names if n in MODULES}


GRAPH = {name: ours(imports(path)) - {name} for name, path in MODULES.items()}


def test_the_tree_is_found():
    assert "harness.pipeline" in GRAPH and "harness.tune.driver" in GRAPH and "models.signmae" in GRAPH


def test_no_import_circle():
    # A package's __init__ importing its own submodules is not a circle of modules.
    def edges(name):
        return {m for m in GRAPH[name] if not (name.startswith(m + ".") and MODULES[m].name == "__init__.py")}

    state: dict[str, int] = {}
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for dep in sorted(edges(name)):
            if state.get(dep) == 1:
                cycle = path[path.index(dep):] + [dep]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        path.pop()
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)


def test_models_import_nothing_of_the_harness():
    bad = {name: sorted(d for d in deps if in_package(d, "harness")) for name, deps in GRAPH.items()
           if in_package(name, "models")}
    assert not {k: v for k, v in bad.items() if v}


def in_package(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_data_imports_nothing_of_the_harness_outside_data():
    bad = {name: sorted(d for d in deps if in_package(d, "harness") and not in_package(d, "harness.data"))
           for name, deps in GRAPH.items() if in_package(name, "harness.data")}
    assert not {k: v for k, v in bad.items() if v}


@pytest.mark.parametrize("library, home", [("ray", "harness.tune"), ("mlflow", "harness.tracking")])
def test_a_library_is_imported_in_one_package_only(library, home):
    users = sorted(name for name, path in MODULES.items() if any(in_package(i, library) for i in imports(path)))
    assert users and all(in_package(u, home) for u in users), users


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in FILES if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long


def test_stages_import_neither_each_other_nor_the_pipeline():
    # The graph lives in the stages' `needs`; a stage gets its upstream outputs from the pipeline.
    stages = [n for n in GRAPH if in_package(n, "harness.stages") and n not in ("harness.stages", "harness.stages.base")]
    assert len(stages) >= 5
    for name in stages:
        others = {d for d in GRAPH[name] if in_package(d, "harness.stages") and d != "harness.stages.base"}
        assert not others and "harness.pipeline" not in GRAPH[name], (name, others)
