"""Shape of worker/: a module at its root is vocabulary every stage shares, and imports no stage."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WORKER = Path(__file__).resolve().parents[2] / "worker"
STAGES = sorted(f"worker.{p.name}" for p in WORKER.iterdir() if (p / "__init__.py").is_file())


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_stages_are_found() -> None:
    assert {"worker.detect", "worker.store", "worker.delivery", "worker.sources"} <= set(STAGES)


@pytest.mark.parametrize("module", sorted(p.name for p in WORKER.glob("*.py")))
def test_a_root_module_imports_no_stage(module: str) -> None:
    stages = [m for m in imported_modules(WORKER / module) if m.startswith(tuple(STAGES))]
    assert not stages, f"worker/{module} imports {stages}: it belongs in a stage"
