"""What a benchmark run measured: plain values the runner fills and the report prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True, kw_only=True)
class PollRow:
    """One poll (one cycle) of one implementation at one size."""

    size: int
    impl: str  # "seqwatch" or "naive"
    cycle: str
    enrollments: int
    wall_s: float
    cpu_s: float
    peak_rss_kb: int
    rss_before_kb: int
    redis_used_delta: int  # used_memory after the poll minus the empty server's
    tracked: int
    redis_cpu_s: float
    requests: int
    min_requests: int
    events: int
    expected_events: int

    @property
    def cpu_us_per_enrollment(self) -> float:
        return self.cpu_s * 1e6 / max(1, self.enrollments)

    @property
    def redis_cpu_us_per_enrollment(self) -> float:
        return self.redis_cpu_s * 1e6 / max(1, self.enrollments)

    @property
    def bytes_per_tracked(self) -> float:
        return self.redis_used_delta / max(1, self.tracked)


@dataclass(frozen=True, slots=True, kw_only=True)
class StateLayout:
    """How seqwatch's state buckets sit in Redis after the unchanged re-poll."""

    size: int
    buckets: int
    encodings: dict[str, int]  # OBJECT ENCODING -> number of buckets
    largest_bucket: int  # fields in the fullest bucket
    bucket_bytes: int  # sum of MEMORY USAGE over the buckets
    tracked: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryRow:
    """Redis memory (INFO used_memory) taken by `size` enrollments of one id kind."""

    kind: str
    size: int
    used_delta: int
    buckets: int
    encodings: dict[str, int]  # OBJECT ENCODING -> number of state buckets
    value_bytes: float  # mean length of the values as stored in Redis
    field_bytes: float = 0.0  # mean length of the hash fields (packed enrollment ids)

    @property
    def bytes_per_enrollment(self) -> float:
        return self.used_delta / max(1, self.size)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryRow:
    guard: bool
    events: int
    delivered: int
    received: int
    verified: int
    wall_s: float
    cpu_s: float
    peak_rss_kb: int
    guard_refuses_loopback: bool | None
    concurrency: int = 1
    floor_s: float = 0.0  # raw keep-alive POSTs of the same signed events, same receiver
    floor_count: int = 0

    @property
    def per_second(self) -> float:
        return self.delivered / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def floor_per_second(self) -> float:
        return self.floor_count / self.floor_s if self.floor_s > 0 else 0.0

    @property
    def of_floor(self) -> float:
        """seqwatch's rate as a share of the floor's, measured in the same run."""
        floor = self.floor_per_second
        return self.per_second / floor if floor > 0 else 0.0

    @property
    def cpu_us_per_delivery(self) -> float:
        return self.cpu_s * 1e6 / max(1, self.delivered)


@dataclass(frozen=True, slots=True, kw_only=True)
class ManyRow:
    """One cycle of many sources polled concurrently by one worker process."""

    sources: int
    per_source: int
    cycle: str
    enrollments: int
    wall_s: float
    cpu_s: float
    peak_rss_kb: int
    rss_before_kb: int  # after building the sources and their HTTP clients, before polling
    requests: int
    min_requests: int
    events: int
    max_jobs: int = 0
    ok: int = 0  # sources whose poll in this run ended ok
    arq: bool = False  # polled through a real arq worker, not the job function alone

    @property
    def cpu_us_per_enrollment(self) -> float:
        return self.cpu_s * 1e6 / max(1, self.enrollments)

    @property
    def enrollments_per_second(self) -> float:
        return self.enrollments / max(1e-9, self.wall_s)

    @property
    def cpu_ms_per_poll(self) -> float:
        return self.cpu_s * 1e3 / max(1, self.sources)


@dataclass(frozen=True, slots=True, kw_only=True)
class FixedFloorRow:
    """The I/O of `sources` one-enrollment polls alone (bench/fixed_floor.py), same run."""

    sources: int
    max_jobs: int
    wall_s: float
    cpu_s: float
    requests: int

    @property
    def cpu_ms_per_poll(self) -> float:
        return self.cpu_s * 1e3 / max(1, self.sources)


@dataclass(frozen=True, slots=True, kw_only=True)
class WholeRow:
    """One whole process (bench/whole.py): exec to exit, startup included."""

    size: int
    impl: str  # "seqwatch" | "naive"
    cycle: str
    cpu_s: float  # user + system, exec to exit
    wall_s: float
    peak_rss_kb: int
    events: int  # webhook posts the peer received
    expected_events: int

    @property
    def cpu_us_per_enrollment(self) -> float:
        return self.cpu_s / self.size * 1e6


@dataclass(slots=True, kw_only=True)
class Figures:
    polls: list[PollRow] = field(default_factory=list)
    layouts: list[StateLayout] = field(default_factory=list)
    deliveries: list[DeliveryRow] = field(default_factory=list)
    many: list[ManyRow] = field(default_factory=list)
    fixed_floor: FixedFloorRow | None = None
    whole: list[WholeRow] = field(default_factory=list)

    def many_row(self, *, per_source: int, cycle: str) -> ManyRow | None:
        found = [r for r in self.many if r.per_source == per_source and r.cycle == cycle]
        return found[0] if found else None

    memory: list[MemoryRow] = field(default_factory=list)
    profiles: dict[int, Path] = field(default_factory=dict)  # size -> .pstats file

    def whole_row(self, size: int, impl: str, cycle: str) -> WholeRow | None:
        for row in self.whole:
            if (row.size, row.impl, row.cycle) == (size, impl, cycle):
                return row
        return None

    def poll(self, size: int, impl: str, cycle: str) -> PollRow | None:
        for row in self.polls:
            if (row.size, row.impl, row.cycle) == (size, impl, cycle):
                return row
        return None
