"""The layering the architecture page promises, checked on the source: the app goes through the
engine's public API only, and nothing outside the resolver loads models by itself."""

from __future__ import annotations

import ast
from pathlib import Path

import workbench

ROOT = Path(__file__).resolve().parents[1]


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) for every import statement in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def test_the_app_imports_only_the_engines_public_api_and_itself() -> None:
    offences = []
    for path in sorted((ROOT / "spaces").glob("*.py")):
        for module, names in imports(path):
            top = module.split(".")[0]
            if top in {"hub_models", "training"} or (top == "workbench" and module != "workbench"):
                offences.append(f"{path.name}: import {module}")
            elif module == "workbench":
                offences += [f"{path.name}: workbench.{name} is not public" for name in names
                             if name not in workbench.__all__]
    assert not offences, offences


def test_one_model_resolver() -> None:
    """Only `hub_models/loading.py` defines `load_model`; the others are doors that call it."""
    definitions = []
    for path in sorted(ROOT.glob("*/**/*.py")):
        if "zoo" in path.parts or ".venv" in path.parts or "tests" in path.parts:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        definitions += [f"{path.relative_to(ROOT)}:{node.lineno}" for node in ast.walk(tree)
                        if isinstance(node, ast.FunctionDef) and node.name == "load_model"]
    doors = {"workbench/models.py"}  # converts the error type only
    real = [place for place in definitions if place.split(":")[0] not in doors]
    assert real == [next(p for p in definitions if p.startswith("hub_models/loading.py"))], definitions
