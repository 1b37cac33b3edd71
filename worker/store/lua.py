"""Lua scripts sent by their SHA1 (EVALSHA); the text goes only when Redis lacks it (after a
restart or SCRIPT FLUSH).

A poll's opening and its last commit are scripts of 2.5 KB each: sent whole, packing and
sending them was a visible share of a small poll's CPU. The page read (load_page.lua) and the
quota slots go the same way. Redis runs nothing for an EVALSHA it
does not know (NOSCRIPT), so sending the text after one is the same single run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError


class Script:
    __slots__ = ("sha", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()

    async def run(
        self,
        redis: Redis,
        keys: Sequence[str],
        args: Sequence[str | bytes],
        **options: Any,
    ) -> Any:
        """One run; `options` are redis-py's for the reply (e.g. NEVER_DECODE=True)."""
        try:
            return await redis.execute_command(  # type: ignore[no-untyped-call]
                "EVALSHA", self.sha, len(keys), *keys, *args, **options
            )
        except NoScriptError:
            return await redis.execute_command(  # type: ignore[no-untyped-call]
                "EVAL", self.text, len(keys), *keys, *args, **options
            )

    def queue(
        self, pipe: Pipeline, keys: Sequence[str], args: Sequence[str], *, whole: bool
    ) -> None:
        """On a pipeline: by SHA1, or `whole` once the pipeline failed with NoScriptError (a
        pipeline runs every command, so the caller re-runs it: keep the others reads)."""
        if whole:
            pipe.eval(self.text, len(keys), *keys, *args)
        else:
            pipe.evalsha(self.sha, len(keys), *keys, *args)
