"""The event loop the commands run on: uvloop when it can be imported, asyncio's otherwise."""

from __future__ import annotations

import ast
import asyncio
import gc
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.app import loop

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def gc_settings() -> Iterator[None]:
    """`loop.run` tunes the collector of the whole process: put it back for the other tests."""
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


async def _running_loop() -> asyncio.AbstractEventLoop:
    await asyncio.sleep(0)
    return asyncio.get_running_loop()


def test_run_uses_uvloop_when_it_is_installed() -> None:
    uvloop = pytest.importorskip("uvloop")
    assert isinstance(loop.run(_running_loop()), uvloop.Loop)


def test_run_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` raises ImportError
    assert loop.loop_factory() is None
    running = loop.run(_running_loop())
    assert type(running).__module__.startswith("asyncio.")
    assert running.is_closed()


def test_run_tunes_the_collector_first() -> None:
    """The young generation is collected less often, and what was loaded before is frozen."""
    gc.set_threshold(700, 10, 10)

    async def seen() -> tuple[tuple[int, int, int], int]:
        return gc.get_threshold(), gc.get_freeze_count()

    thresholds, frozen = loop.run(seen())
    assert thresholds == (loop.GC_YOUNG_THRESHOLD, 10, 10)
    assert frozen > 1000  # at least this test process's modules


def test_run_returns_the_result_and_raises_what_the_coroutine_raises() -> None:
    async def fails() -> None:
        raise LookupError("boom")

    assert loop.run(asyncio.sleep(0, result=7)) == 7
    with pytest.raises(LookupError, match="boom"):
        loop.run(fails())


# Runs `seqwatch ARGS` in-process and prints its exit status and the class of every event loop
# it created.
_RECORD_LOOPS = """
import asyncio, gc, sys
from worker.app import cli, loop
made = []
chosen = loop.loop_factory
def recording():
    factory = chosen() or asyncio.new_event_loop
    def make():
        created = factory()
        made.append(f"{type(created).__module__}.{type(created).__name__}")
        made.append(gc.get_threshold()[0])
        return created
    return make
loop.loop_factory = recording
print(cli.main(sys.argv[1:]), made)
"""


def test_a_command_runs_on_the_chosen_loop(tmp_path: Path) -> None:
    """`seqwatch poll` (here against a Redis that refuses connections) runs on uvloop's loop
    when uvloop is installed, on asyncio's otherwise: one loop, made by `loop.run`, with the
    collector tuned."""
    try:
        import uvloop
    except ImportError:
        expected = f"{type(asyncio.new_event_loop()).__module__}"
    else:
        expected = f"{uvloop.Loop.__module__}.Loop"
    config = tmp_path / "seqwatch.toml"
    config.write_text(
        '[redis]\nurl = "redis://127.0.0.1:1/15"\n'
        '[[sources]]\nname = "a"\nprovider = "replyio"\napi_key = "env:SW_TEST_KEY"\n'
    )
    done = subprocess.run(
        [sys.executable, "-c", _RECORD_LOOPS, "--config", str(config), "poll"],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "SW_TEST_KEY": "rk-test-0123456"},
    )  # fmt: skip
    code, made = done.stdout.strip().split(" ", 1)
    assert code == "1", done.stderr  # redis unavailable
    assert "redis unavailable" in done.stderr
    [only, young] = ast.literal_eval(made)
    assert only.startswith(expected)
    assert young == loop.GC_YOUNG_THRESHOLD  # the collector tuned as the loop starts
