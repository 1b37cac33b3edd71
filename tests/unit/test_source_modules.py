"""Shape of the provider code: the registry imports the providers, never the reverse."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from worker.sources.registry import PROVIDERS

SOURCES = Path(__file__).resolve().parents[2] / "worker" / "sources"


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_a_provider_module_does_not_import_the_registry(provider: str) -> None:
    modules = imported_modules(SOURCES / f"{provider}.py")
    assert "worker.sources.registry" not in modules
    assert "worker.sources.params" in modules  # where SourceParams lives now


def test_offset_paging_lives_once() -> None:
    # Reply.io and Whippy page by offset through the shared pager, not a copy of their own.
    for provider in ("replyio", "whippy"):
        modules = imported_modules(SOURCES / f"{provider}.py")
        assert "worker.sources.paging.OffsetPager" in modules
        assert "PageGuard" not in (SOURCES / f"{provider}.py").read_text()
