"""The event loop every `seqwatch` command and the daemon run on: uvloop where it is installed,
asyncio's own loop otherwise.

uvloop cuts the loop's and the sockets' share of a small source poll (issue 10, target 4: the
fixed CPU of a poll); nothing in seqwatch depends on which loop runs it. It is a dependency on
every platform uvloop supports, and optional: without it (Windows, or not installed) the
commands run exactly as before on asyncio's loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop constructor, or None (asyncio's default) when uvloop cannot be imported."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the loop `loop_factory` picks."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
