"""Measure one stretch of work in this process: wall time, CPU time, peak RSS; optional profile."""

from __future__ import annotations

import cProfile
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    wall_s: float
    cpu_s: float  # user + system of this process over the measured stretch
    peak_rss_kb: int  # this process's peak RSS so far (Linux reports KiB)
    rss_before_kb: int  # peak RSS when the stretch began: imports and setup
    profiled: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Usage:
        return cls(**doc)


def peak_rss_kb() -> int:
    """This process image's peak RSS in KiB. Linux's ru_maxrss starts at the parent's peak (a
    spawned child inherits its high-water mark across exec), so a child of a large bench process
    would report the parent's size; /proc's VmHWM counts this image's pages only."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _now() -> tuple[float, float, int]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), usage.ru_utime + usage.ru_stime, peak_rss_kb()


class Meter:
    """`with Meter() as m: ...` then `m.usage`; with `profile_to`, cProfile runs inside."""

    def __init__(self, *, profile_to: Path | None = None) -> None:
        self._profile_to = profile_to
        self._profiler: cProfile.Profile | None = None
        self._start = (0.0, 0.0, 0)
        self._usage: Usage | None = None

    def __enter__(self) -> Meter:
        if self._profile_to is not None:
            self._profiler = cProfile.Profile()
        self._start = _now()
        if self._profiler is not None:
            self._profiler.enable()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._profiler is not None:
            self._profiler.disable()
        wall, cpu, peak = _now()
        self._usage = Usage(
            wall_s=wall - self._start[0],
            cpu_s=cpu - self._start[1],
            peak_rss_kb=peak,
            rss_before_kb=self._start[2],
            profiled=self._profiler is not None,
        )
        if self._profiler is not None and self._profile_to is not None:
            self._profiler.dump_stats(self._profile_to)

    @property
    def usage(self) -> Usage:
        if self._usage is None:
            raise RuntimeError("Meter was not run")
        return self._usage
