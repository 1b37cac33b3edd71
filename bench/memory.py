"""Redis bytes per tracked enrollment, by id kind and size, from INFO memory.

Each (kind, size) gets a fresh redis-server. Enrollments are written exactly as a poll writes
them (StateStore pages of 1,000 under a lease, growing the buckets by splits) with the values
the codec stores for that provider's records. A warm-up page of another source is written and
deleted first, so Lua's script cache and client buffers are not charged to the enrollments.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from bench.figures import MemoryRow
from bench.procs import RedisBox
from worker.enrollment import State, Status
from worker.store import codec, keys, lease
from worker.store.batch import Batch
from worker.store.redis_conn import connect
from worker.store.state import StateStore

PAGE = 1000
SOURCE = "bench-memory"
WARM_SOURCE = "bench-warm"

Record = tuple[str, str]  # (enrollment id, stored value)
_UNIFY_SEQUENCES = [str(uuid.UUID(int=k + 1, version=4)) for k in range(10)]
_STEPS = [str(uuid.UUID(int=k + 100, version=4)) for k in range(5)]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _reply(i: int, rng: random.Random) -> Record:
    """Reply.io: `<sequence id>:<contact id>`, integers; the value is the state alone."""
    sequence, contact = str(5000 + i // 10_000), str(10_000_000 + i * 48_271 % 90_000_000)
    state = State(
        status=Status.ACTIVE, raw_status="Active", step=1 + i % 5, replied=False, opted_out=False
    )
    enrollment_id = f"{sequence}:{contact}"
    value = codec.encode(
        state, enrollment_id=enrollment_id, sequence_id=sequence, contact_id=contact
    )
    return enrollment_id, value


def _zendesk_sell(i: int, rng: random.Random) -> Record:
    """Zendesk Sell: an integer enrollment id; the record also carries sequence and contact ids
    and the contact's type."""
    enrollment_id = str(40_000_000 + i)
    state = State(status=Status.ACTIVE, raw_status="active", step=1 + i % 5)
    value = codec.encode(
        state,
        enrollment_id=enrollment_id,
        sequence_id=str(900 + i // 10_000),
        contact_id=str(3_000_000_000 + i * 7),
        contact_type="contact",  # Sell enrollments target a lead or a contact
    )
    return enrollment_id, value


def _whippy(i: int, rng: random.Random) -> Record:
    """Whippy: `<sequence uuid>:<contact uuid>`; the record carries its step UUID."""
    sequence, contact = _UNIFY_SEQUENCES[i % 10], _uuid(rng)
    state = State(status=Status.ACTIVE, raw_status="active", step=1 + i % 5, step_id=_STEPS[i % 5])
    enrollment_id = f"{sequence}:{contact}"
    value = codec.encode(
        state, enrollment_id=enrollment_id, sequence_id=sequence, contact_id=contact
    )
    return enrollment_id, value


def _unify(i: int, rng: random.Random) -> Record:
    """Unify: a UUID id; the record also carries its sequence and person UUIDs."""
    enrollment_id = _uuid(rng)
    state = State(
        status=Status.ACTIVE,
        raw_status="IN_PROGRESS",
        replied=False,
        bounced=False,
        opted_out=False,
    )
    value = codec.encode(
        state,
        enrollment_id=enrollment_id,
        sequence_id=_UNIFY_SEQUENCES[i % 10],
        contact_id=_uuid(rng),
    )
    return enrollment_id, value


KINDS: dict[str, Callable[[int, random.Random], Record]] = {
    "integer ids (Reply.io)": _reply,
    "UUID ids (Unify)": _unify,
    "integer ids (Zendesk Sell)": _zendesk_sell,
    "UUID-pair ids (Whippy)": _whippy,
}
# The table's default rows (one integer-id and one UUID-id provider); --memory-all adds the rest.
DEFAULT_KINDS = ("integer ids (Reply.io)", "UUID ids (Unify)")


async def _write(url: str, source: str, records: list[Record]) -> None:
    redis = connect(url)
    try:
        held = await lease.try_acquire(redis, source=source, ttl_ms=600_000)
        assert held is not None
        store = StateStore(redis, source=source)
        for first in range(0, len(records), PAGE):
            page = dict(records[first : first + PAGE])
            stored = await store.load(page)
            batch = Batch()
            for enrollment_id, value in page.items():
                store.put(batch, enrollment_id, value)
            store.count(batch, "tracked", len(page) - len(stored))
            await batch.commit(redis, lease_key=held.key, token=held.token, ttl_ms=held.ttl_ms)
        await lease.release(redis, held)
    finally:
        await redis.aclose()


def _forget(box: RedisBox, source: str) -> None:
    doomed = list(box.redis.scan_iter(match=f"{keys.PREFIX}:{{{source}}}:*"))
    if doomed:
        box.redis.delete(*doomed)


@dataclass(frozen=True, slots=True)
class _Layout:
    buckets: int
    encodings: dict[str, int]
    field_bytes: float  # mean, as stored
    value_bytes: float


def _layout(box: RedisBox) -> _Layout:
    count = int(box.redis.hget(keys.meta(SOURCE), "buckets") or 1)  # type: ignore[arg-type]
    pipe = box.redis.pipeline(transaction=False)
    for bucket in range(count):
        pipe.object("ENCODING", keys.state_bucket(SOURCE, bucket))
    encodings = dict(Counter(str(e) for e in pipe.execute()))
    fields = values = stored = 0
    for first in range(0, count, 1000):
        pipe = box.redis.pipeline(transaction=False)
        for bucket in range(first, min(count, first + 1000)):
            pipe.execute_command(  # type: ignore[no-untyped-call]
                "HGETALL", keys.state_bucket(SOURCE, bucket), NEVER_DECODE=True
            )
        for entries in pipe.execute():
            stored += len(entries)
            fields += sum(len(f) for f in entries)
            values += sum(len(v) for v in entries.values())
    return _Layout(count, encodings, fields / max(1, stored), values / max(1, stored))


def _settled_memory(box: RedisBox) -> int:
    """used_memory once Redis has settled: the writers' connections are gone (a closing
    client's buffers are freed asynchronously), and the server cron (10 Hz) has finished
    rehashing or shrinking the keyspace table, which deleting the warm-up's keys leaves
    oversized: 14 kB, 14 B per enrollment at 1k, counted against no enrollment."""
    for _ in range(200):
        clients = cast("dict[str, Any]", box.redis.info("clients"))
        if int(clients["connected_clients"]) <= 1:
            break
        time.sleep(0.01)
    time.sleep(0.5)
    return box.figures().used_memory


def measure(kind: str, size: int, work_dir: Path, *, cpu: int | None = None) -> MemoryRow:
    make = KINDS[kind]
    rng = random.Random(f"{kind}:{size}")
    records = [make(i, rng) for i in range(size)]
    with RedisBox(work_dir / f"redis-memory-{size}", cpu=cpu) as box:
        asyncio.run(_write(box.url, WARM_SOURCE, [make(i, rng) for i in range(PAGE)]))
        _forget(box, WARM_SOURCE)
        before = _settled_memory(box)
        asyncio.run(_write(box.url, SOURCE, records))
        after = _settled_memory(box)
        layout = _layout(box)
    return MemoryRow(
        kind=kind,
        size=size,
        used_delta=after - before,
        buckets=layout.buckets,
        encodings=layout.encodings,
        value_bytes=layout.value_bytes,
        field_bytes=layout.field_bytes,
    )
