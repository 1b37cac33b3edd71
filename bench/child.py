"""One measurement in a fresh process: `python -m bench.child JOB.json RESULT.json`.

A process per measurement keeps each peak RSS clean. The result file holds the job's facts
(enrollments, events, ...) and the Usage of the measured stretch only (no imports, no setup).
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from bench.meter import Meter
from worker.app import loop  # the loop the `seqwatch` commands run on (uvloop if installed)


class Kind(StrEnum):
    SEQWATCH = "seqwatch"
    NAIVE = "naive"
    DELIVERY = "delivery"
    MANY = "many"  # `sources` sources, one sequence each, polled as `seqwatch run` polls
    FLOOR = "floor"  # decode + one HMGET + field extraction per page: the least a poll costs
    FIXED_FLOOR = "fixed-floor"  # MANY's I/O alone: the floor of a poll's fixed CPU


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    kind: Kind
    peer_port: int
    redis_url: str
    profile_to: str | None = None
    deliveries: int = 0
    guard: bool = True
    sources: int = 0  # MANY, FIXED_FLOOR
    max_jobs: int = 0  # MANY, FIXED_FLOOR: jobs in flight at once, as `[worker] max_jobs`
    arq: bool = False  # MANY: through a real arq worker (queue and job bookkeeping included)
    cpu: int | None = None  # pin the measured process to this CPU

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes) -> Job:
        doc = orjson.loads(raw)
        return cls(**{**doc, "kind": Kind(doc["kind"])})


def run(job: Job) -> dict[str, Any]:
    meter = Meter(profile_to=Path(job.profile_to) if job.profile_to else None)
    if job.kind is Kind.SEQWATCH:
        from bench.seqwatch_job import poll_once

        facts = loop.run(poll_once(peer_url=job.peer_url, redis_url=job.redis_url, meter=meter))
    elif job.kind is Kind.NAIVE:
        from bench.naive import poll_naively

        facts = poll_naively(
            peer_url=job.peer_url,
            redis_url=job.redis_url,
            hook_url=job.peer_url + "/hook",
            meter=meter,
        )
    elif job.kind is Kind.FLOOR:
        from bench.floor import floor_poll

        facts = floor_poll(peer_url=job.peer_url, redis_url=job.redis_url, meter=meter)
    elif job.kind is Kind.FIXED_FLOOR:
        from bench.fixed_floor import fixed_floor

        facts = loop.run(
            fixed_floor(
                peer_url=job.peer_url,
                redis_url=job.redis_url,
                sources=job.sources,
                max_jobs=job.max_jobs,
                meter=meter,
            )
        )
    elif job.kind is Kind.MANY:
        from bench.many_job import poll_many

        facts = loop.run(
            poll_many(
                peer_url=job.peer_url,
                redis_url=job.redis_url,
                sources=job.sources,
                max_jobs=job.max_jobs,
                meter=meter,
                arq=job.arq,
            )
        )
    else:
        from bench.delivery import deliver_all

        facts = loop.run(
            deliver_all(
                receiver_port=job.peer_port,
                redis_url=job.redis_url,
                count=job.deliveries,
                guard=job.guard,
                meter=meter,
            )
        )
    return {"facts": facts, "usage": meter.usage.as_dict()}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python -m bench.child JOB.json RESULT.json\n")
        return 2
    job = Job.from_json(Path(argv[0]).read_bytes())
    if job.cpu is not None:
        os.sched_setaffinity(0, {job.cpu})
    Path(argv[1]).write_bytes(orjson.dumps(run(job)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
