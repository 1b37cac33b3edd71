"""Runs the measurements: per size, three seqwatch polls and three naive polls against fresh
Redis servers, then the delivery benchmark. Printing is the caller's (`report`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.child import Job, Kind
from bench.delivery import SECRET
from bench.figures import DeliveryRow, Figures, FixedFloorRow, ManyRow, PollRow, StateLayout
from bench.naive import POLLED
from bench.procs import PeerProcess, RedisBox, run_child
from bench.seqwatch_job import SOURCE
from bench.synth import PAGE_SIZE, Account, Cycle
from worker.store import keys


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    sizes: tuple[int, ...]
    naive_sizes: tuple[int, ...]
    seed: int
    per_sequence: int
    deliveries: int  # 0: skip the delivery benchmark
    profile: bool
    work_dir: Path
    repeat: int = 1
    memory_sizes: tuple[int, ...] = ()
    memory_all: bool = False  # every provider's id kind, not one integer and one UUID kind
    json_to: Path | None = None
    many_sources: tuple[int, int] | None = None  # (sources, enrollments each); None: skip
    max_jobs: int = 100  # many sources: jobs in flight at once, as `[worker] max_jobs`
    many_arq: bool = False  # many sources: also through a real arq worker
    # Worker on one CPU, Redis and the fake on another: every Redis round trip crosses CPUs,
    # as it crosses the network in production (None: let the OS place them).
    worker_cpu: int | None = None
    service_cpu: int | None = None


Emit = Callable[[object], None]
# The floor is measured for the two cycles it is compared with.
FLOOR_CYCLES = (Cycle.UNCHANGED, Cycle.CHANGED)


def _tracked(box: RedisBox, impl: Kind) -> int:
    if impl is Kind.SEQWATCH:
        return int(box.redis.hget(keys.meta(SOURCE), "tracked") or 0)  # type: ignore[arg-type]
    return max(0, int(box.redis.dbsize()) - int(box.redis.exists(POLLED)))  # type: ignore[arg-type]


def _layout(box: RedisBox, size: int) -> StateLayout:
    bucket_count = int(box.redis.hget(keys.meta(SOURCE), "buckets") or 1)  # type: ignore[arg-type]
    pipe = box.redis.pipeline(transaction=False)
    names = [keys.state_bucket(SOURCE, b) for b in range(bucket_count)]
    for name in names:
        pipe.object("ENCODING", name)
        pipe.execute_command("MEMORY", "USAGE", name, "SAMPLES", "0")  # type: ignore[no-untyped-call]
        pipe.hlen(name)
    replies: list[Any] = pipe.execute()
    encodings = Counter(str(replies[i] or "missing") for i in range(0, len(replies), 3))
    return StateLayout(
        size=size,
        buckets=len(names),
        encodings=dict(encodings),
        largest_bucket=max(int(replies[i] or 0) for i in range(2, len(replies), 3)),
        bucket_bytes=sum(int(replies[i] or 0) for i in range(1, len(replies), 3)),
        tracked=_tracked(box, Kind.SEQWATCH),
    )


class Runner:
    def __init__(self, options: Options, peer: PeerProcess, *, emit: Emit) -> None:
        self.options = options
        self.peer = peer
        self.emit = emit  # called with each figure as soon as it is measured
        self.figures = Figures()

    def _show(self, account: Account, cycle: Cycle) -> None:
        self.peer.call(
            "/_bench/account",
            {
                "enrollments": account.enrollments,
                "seed": account.seed,
                "per_sequence": account.per_sequence,
                "cycle": cycle.value,
            },
        )

    def polls(self, size: int, impl: Kind) -> None:
        """`repeat` series on fresh servers; per cycle, the run with the least worker CPU."""
        account = Account(
            enrollments=size, seed=self.options.seed, per_sequence=self.options.per_sequence
        )
        runs = [self._series(account, impl, first=n == 0) for n in range(self.options.repeat)]
        for cycle in Cycle:
            best = min((rows[cycle] for rows, _ in runs), key=lambda row: row.cpu_s)
            self.figures.polls.append(best)
            self.emit(best)
            layout = runs[0][1]
            if cycle is Cycle.UNCHANGED and layout is not None:
                self.figures.layouts.append(layout)
                self.emit(layout)
        for cycle in FLOOR_CYCLES:
            floors = [rows[(Kind.FLOOR, cycle)] for rows, _ in runs if (Kind.FLOOR, cycle) in rows]
            if floors:
                best = min(floors, key=lambda row: row.cpu_s)
                self.figures.polls.append(best)
                self.emit(best)

    def _series(
        self, account: Account, impl: Kind, *, first: bool
    ) -> tuple[dict[Any, PollRow], StateLayout | None]:
        """Baseline, unchanged re-poll and 1% changed, in order, against one fresh Redis; for
        seqwatch, then the floor of the unchanged and the changed listing on the same server."""
        size, work = account.enrollments, self.options.work_dir
        rows: dict[Any, PollRow] = {}
        layout = None
        with RedisBox(work / f"redis-{impl}-{size}", cpu=self.options.service_cpu) as box:
            empty = box.figures()
            jobs = [(impl, cycle) for cycle in Cycle]
            if impl is Kind.SEQWATCH:
                jobs += [(Kind.FLOOR, cycle) for cycle in FLOOR_CYCLES]
            for kind, cycle in jobs:
                self._show(account, cycle)
                before = box.figures()
                job = Job(
                    kind=kind,
                    peer_port=self.peer.port,
                    redis_url=box.url,
                    cpu=self.options.worker_cpu,
                )
                result = run_child(job, work_dir=work, name=f"{kind}-{size}-{cycle}")
                stats = self.peer.call("/_bench/stats")
                after = box.figures()
                if kind is Kind.FLOOR:
                    rows[(kind, cycle)] = PollRow(
                        size=size,
                        impl=kind.value,
                        cycle=cycle.value,
                        enrollments=int(result.facts["enrollments"]),
                        wall_s=result.usage.wall_s,
                        cpu_s=result.usage.cpu_s,
                        peak_rss_kb=result.usage.peak_rss_kb,
                        rss_before_kb=result.usage.rss_before_kb,
                        redis_used_delta=0,
                        tracked=0,
                        redis_cpu_s=0.0,  # its setup writes would count: not reported
                        requests=int(stats["api_requests"]),
                        min_requests=account.minimum_requests(),
                        events=0,
                        expected_events=0,
                    )
                    continue
                rows[cycle] = PollRow(
                    size=size,
                    impl=impl.value,
                    cycle=cycle.value,
                    enrollments=int(result.facts["enrollments"]),
                    wall_s=result.usage.wall_s,
                    cpu_s=result.usage.cpu_s,
                    peak_rss_kb=result.usage.peak_rss_kb,
                    rss_before_kb=result.usage.rss_before_kb,
                    redis_used_delta=after.used_memory - empty.used_memory,
                    tracked=_tracked(box, impl),
                    redis_cpu_s=after.cpu_s - before.cpu_s,
                    requests=int(stats["api_requests"]),
                    min_requests=account.minimum_requests(),
                    events=int(result.facts["events"]),
                    expected_events=account.changed_count if cycle is Cycle.CHANGED else 0,
                )
                if first and impl is Kind.SEQWATCH and cycle is Cycle.UNCHANGED:
                    layout = _layout(box, size)
                    if self.options.profile:
                        self._profile(account, box, size)
        return rows, layout

    def _profile(self, account: Account, box: RedisBox, size: int) -> None:
        """One more unchanged re-poll, under cProfile (its timings are not reported)."""
        self._show(account, Cycle.UNCHANGED)
        path = self.options.work_dir / f"profile-unchanged-{size}.pstats"
        job = Job(
            kind=Kind.SEQWATCH,
            peer_port=self.peer.port,
            redis_url=box.url,
            profile_to=str(path),
            cpu=self.options.worker_cpu,
        )
        run_child(job, work_dir=self.options.work_dir, name=f"profile-{size}")
        self.figures.profiles[size] = path

    def many(self, sources: int, per_source: int) -> None:
        """`sources` sources of `per_source` enrollments, then the same count of one-enrollment
        sources (their unchanged re-poll is the fixed cost of a poll); per account a baseline
        and an unchanged re-poll, each by one child polling as `seqwatch run` does."""
        for each in dict.fromkeys((per_source, 1)):
            self._many(sources, each, arq=False)
        if self.options.many_arq:
            self._many(sources, per_source, arq=True)

    def _many(self, sources: int, per_source: int, *, arq: bool) -> None:
        account = Account(
            enrollments=sources * per_source, seed=self.options.seed, per_sequence=per_source
        )
        # Per source (an account of one allow-listed sequence): its contact pages, after its
        # sequence listing in the baseline only; later polls reuse the listing the baseline read
        # (worker/sources/known_sequences.py).
        pages = sum(max(1, -(-account.sequence_size(k) // PAGE_SIZE)) for k in range(sources))
        work = self.options.work_dir
        via = "arq" if arq else "job"
        with RedisBox(work / f"redis-many-{per_source}-{via}", cpu=self.options.service_cpu) as box:
            for cycle in (Cycle.BASELINE, Cycle.UNCHANGED):
                # The unchanged re-poll repeats (`--repeat`): the run with the least CPU counts.
                runs = 1 if cycle is Cycle.BASELINE else self.options.repeat
                minimum = pages + (sources if cycle is Cycle.BASELINE else 0)
                rows = [
                    self._many_run(box, account, cycle, minimum, arq=arq, n=n) for n in range(runs)
                ]
                row = min(rows, key=lambda r: r.cpu_s)
                self.figures.many.append(row)
                self.emit(row)
            if per_source == 1 and not arq:
                # The fixed CPU's floor, on the same servers, right after (the peer still shows
                # the unchanged listing): `--repeat` runs, the one with the least CPU counts.
                floors = [self._fixed_floor(box, account, n=n) for n in range(self.options.repeat)]
                self.figures.fixed_floor = min(floors, key=lambda r: r.cpu_s)
                self.emit(self.figures.fixed_floor)

    def _many_run(
        self, box: RedisBox, account: Account, cycle: Cycle, minimum: int, *, arq: bool, n: int
    ) -> ManyRow:
        sources, per_source = account.sequences, account.per_sequence
        self._show(account, cycle)  # also zeroes the peer's request counter
        job = Job(
            kind=Kind.MANY,
            peer_port=self.peer.port,
            redis_url=box.url,
            sources=sources,
            max_jobs=self.options.max_jobs,
            arq=arq,
            cpu=self.options.worker_cpu,
        )
        via = "arq" if arq else "job"
        name = f"many-{sources}x{per_source}-{via}-{cycle}-{n}"
        result = run_child(job, work_dir=self.options.work_dir, name=name)
        stats = self.peer.call("/_bench/stats")
        return ManyRow(
            sources=int(result.facts["sources"]),
            per_source=per_source,
            cycle=cycle.value,
            enrollments=int(result.facts["enrollments"]),
            wall_s=result.usage.wall_s,
            cpu_s=result.usage.cpu_s,
            peak_rss_kb=result.usage.peak_rss_kb,
            rss_before_kb=result.usage.rss_before_kb,
            requests=int(stats["api_requests"]),
            min_requests=minimum,
            events=int(result.facts["events"]),
            max_jobs=int(result.facts["max_jobs"]),
            ok=int(result.facts["ok"]),
            arq=arq,
        )

    def _fixed_floor(self, box: RedisBox, account: Account, *, n: int) -> FixedFloorRow:
        self._show(account, Cycle.UNCHANGED)  # also zeroes the peer's request counter
        job = Job(
            kind=Kind.FIXED_FLOOR,
            peer_port=self.peer.port,
            redis_url=box.url,
            sources=account.sequences,
            max_jobs=self.options.max_jobs,
            cpu=self.options.worker_cpu,
        )
        name = f"fixed-floor-{account.sequences}-{n}"
        result = run_child(job, work_dir=self.options.work_dir, name=name)
        stats = self.peer.call("/_bench/stats")
        return FixedFloorRow(
            sources=int(result.facts["sources"]),
            max_jobs=self.options.max_jobs,
            wall_s=result.usage.wall_s,
            cpu_s=result.usage.cpu_s,
            requests=int(stats["api_requests"]),
        )

    def memory(self) -> None:
        """Bytes per enrollment for every id kind at every memory size."""
        from bench.memory import DEFAULT_KINDS, KINDS, measure

        for kind in KINDS if self.options.memory_all else DEFAULT_KINDS:
            for size in self.options.memory_sizes:
                row = measure(kind, size, self.options.work_dir, cpu=self.options.service_cpu)
                self.figures.memory.append(row)
                self.emit(row)

    def deliveries(self) -> None:
        """Guard on, then guard off; each the best (fastest) of `repeat` runs."""
        with RedisBox(
            self.options.work_dir / "redis-delivery", cpu=self.options.service_cpu
        ) as box:
            for guard in (True, False):
                runs = [self._delivery(box, guard=guard) for _ in range(self.options.repeat)]
                best = max(runs, key=lambda row: row.per_second)
                self.figures.deliveries.append(best)
                self.emit(best)

    def _delivery(self, box: RedisBox, *, guard: bool) -> DeliveryRow:
        count = self.options.deliveries
        self.peer.call("/_bench/hook", {"secret": SECRET})  # also zeroes the counters
        job = Job(
            kind=Kind.DELIVERY,
            peer_port=self.peer.port,
            redis_url=box.url,
            deliveries=count,
            guard=guard,
            cpu=self.options.worker_cpu,
        )
        result = run_child(job, work_dir=self.options.work_dir, name=f"delivery-{guard}")
        refused = result.facts["guard_refuses_loopback"]
        return DeliveryRow(
            guard=guard,
            events=count,
            delivered=int(result.facts["delivered"]),
            received=int(result.facts["received"]),  # counted before the second floor
            verified=int(result.facts["verified"]),
            wall_s=result.usage.wall_s,
            cpu_s=result.usage.cpu_s,
            peak_rss_kb=result.usage.peak_rss_kb,
            guard_refuses_loopback=None if refused is None else bool(refused),
            concurrency=int(result.facts["concurrency"]),
            floor_s=float(result.facts["floor_s"]),
            floor_count=int(result.facts["floor_count"]),
        )
