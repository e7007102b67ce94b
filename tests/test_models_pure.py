"""models/ is pure PyTorch: no file under it imports the harness's libraries (ray, optuna, mlflow,
yaml) or anything but torch, numpy and a few standard-library basics. Checked statically with ast,
including imports nested inside functions. One exception: the optional Hugging Face text encoder
(DESIGN: "a local Hugging Face model path is optional") may import `transformers`, but only
inside a function, so that importing models/ never needs it."""

import ast
from pathlib import Path

import pytest

MODELS = Path(__file__).resolve().parents[1] / "models"
FORBIDDEN = {"ray", "optuna", "mlflow", "yaml"}
ALLOWED = {
    "torch", "numpy", "math", "typing", "dataclasses", "__future__", "models",
    "collections", "functools", "itertools", "abc", "enum", "warnings", "copy", "numbers", "contextlib",
}
OPTIONAL_LAZY = {"transformers"}


def imported_roots(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every import in the file, nested ones included."""
    roots = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:  # relative imports stay in models/
            roots.append((node.lineno, node.module.split(".")[0]))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in {"__import__", "import_module"}:
            roots.append((node.lineno, "<dynamic import>"))
    return roots


FILES = sorted(MODELS.glob("*.py"))


def module_level_lines(path: Path) -> set[int]:
    """Lines of the imports executed on import of the module (outside any def / class body)."""
    lines = set()

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                lines.add(child.lineno)
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return lines


def violations(path: Path) -> list[str]:
    top = module_level_lines(path)
    bad = []
    for line, root in imported_roots(path):
        lazy_ok = root in OPTIONAL_LAZY and line not in top
        if root in FORBIDDEN or (root not in ALLOWED and not lazy_ok):
            bad.append(f"{path.name}:{line} imports {root}")
    return bad


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_models_import_only_torch_numpy_and_basics(path):
    bad = violations(path)
    assert not bad, "; ".join(bad)


def test_the_checker_catches_a_forbidden_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import torch\nimport transformers\n\ndef f():\n    import yaml\n    from ray import tune\n    import transformers\n")
    assert [root for _, root in imported_roots(probe)] == ["torch", "transformers", "yaml", "ray", "transformers"]
    # the module-level transformers import is refused, the lazy one inside f is allowed
    assert violations(probe) == ["probe.py:2 imports transformers", "probe.py:5 imports yaml", "probe.py:6 imports ray"]
