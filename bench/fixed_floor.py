"""The floor of a poll's fixed cost: the I/O a one-enrollment source's poll makes, and nothing else.

Per source, as `--many-sources` polls it (`max_jobs` at a time, one worker process): the same two
GETs (its sequence listing, then its contact page) through one shared aiohttp session, each body
decoded with orjson, and three Redis round trips through the client seqwatch opens
(worker.store.redis_conn): a lease taken with the source's stored state read whole (one
pipeline), a quota slot counted, the lease released; that is one round trip for each of a
poll's opening (which reads a one-bucket source whole: worker/store/state.py), its second quota
slot and its last commit. No quota logic, no diff, no bookkeeping, no log line.
Like the measured polls, it starts in a fresh process with no connection open.

The fixed-CPU target is absolute (1 ms) and this VM's speed varies by a third over hours; this
floor, measured in the same run, says how much of a poll's fixed CPU is those clients' I/O.
Runs inside a measured child process.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from bench.meter import Meter
from bench.synth import ACCOUNT_KEY_PREFIX, PAGE_SIZE
from worker.sources.replyio import CONTACT_ORDER
from worker.store.redis_conn import connect


async def fixed_floor(
    *, peer_url: str, redis_url: str, sources: int, max_jobs: int, meter: Meter
) -> dict[str, Any]:
    redis = connect(redis_url)
    limit = asyncio.Semaphore(max_jobs)
    found = 0
    paging = {"top": str(PAGE_SIZE), "skip": "0"}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:

        async def get(path: str, key: str, params: dict[str, str]) -> Any:
            async with http.get(
                peer_url + path, params=params, headers={"X-API-Key": key}
            ) as response:
                response.raise_for_status()
                return orjson.loads(await response.read())

        async def one(k: int) -> None:
            nonlocal found
            key, lease = f"{ACCOUNT_KEY_PREFIX}{k}", f"floor:{{{k}}}:lease"
            async with limit:
                async with redis.pipeline(transaction=False) as pipe:
                    pipe.set(lease, "token", nx=True, px=15_000)
                    pipe.hgetall(f"floor:{{{k}}}:state")
                    _, stored = await pipe.execute()
                listing = await get("/v4/sequences", key, paging)
                await redis.incr(f"floor:{{{k}}}:quota")
                sequence = listing["items"][0]["id"]
                page = await get(f"/v4/sequences/{sequence}/contacts", key, paging | CONTACT_ORDER)
                ids = [f"{r['sequenceId']}:{r['contactId']}" for r in page["items"]]
                values = [stored.get(i) for i in ids]  # the page compared, from the opening's read
                found += len(values)
                await redis.delete(lease)

        try:
            with meter:
                await asyncio.gather(*(one(k) for k in range(sources)))
        finally:
            await redis.aclose()
    assert found == sources, "every source's contact page holds one enrollment"
    return {"sources": sources, "enrollments": found}
