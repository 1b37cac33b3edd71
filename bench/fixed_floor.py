"""The floor of a poll's fixed cost: the I/O a one-enrollment source's poll makes, and nothing else.

Per source, as `--many-sources` polls it (`max_jobs` at a time, one worker process): the GET of
its contact page through one shared aiohttp session, its body decoded with orjson, and two Redis
round trips through the client seqwatch opens (worker.store.redis_conn): a lease taken, a quota
slot counted and the source's stored state read whole (one pipeline), then the lease released.
That is a re-poll of an allow-listed source, whose sequence listing the baseline read and
remembered (worker/sources/known_sequences.py): one round trip for its opening (which reads a
one-bucket source whole, worker/store/state.py, and grants the first request's quota slot) and
one for its last commit. No quota logic, no diff, no bookkeeping, no log line.
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
from bench.synth import ACCOUNT_KEY_PREFIX, FIRST_SEQUENCE_ID, PAGE_SIZE
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
                    pipe.incr(f"floor:{{{k}}}:quota")
                    pipe.hgetall(f"floor:{{{k}}}:state")
                    _, _, stored = await pipe.execute()
                sequence = FIRST_SEQUENCE_ID + k  # allow-listed (bench/many_job.py)
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
