"""How every `seqwatch` command and the daemon run their coroutine: on uvloop where it is
installed (asyncio's own loop otherwise), with the garbage collector tuned for a worker.

uvloop cuts the loop's and the sockets' share of a small source poll (issue 10, target 4: the
fixed CPU of a poll); nothing in seqwatch depends on which loop runs it. It is a dependency on
every platform uvloop supports, and optional: without it (Windows, or not installed) the
commands run exactly as before on asyncio's loop.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# The youngest generation is collected after this many new container objects (CPython: 700).
# With 100 polls in flight, each collection re-scanned their live state and the survivors were
# scanned again one generation up: the collector took 10-15% of a small poll's CPU.
GC_YOUNG_THRESHOLD = 20_000


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop constructor, or None (asyncio's default) when uvloop cannot be imported."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def tune_gc() -> None:
    """What is loaded so far (modules, config) lives as long as the process: out of the
    collector's sight (gc.freeze); the youngest generation collected less often. Garbage in
    reference cycles is still collected, a little later."""
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, oldest)


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the loop `loop_factory` picks, after `tune_gc`."""
    tune_gc()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
