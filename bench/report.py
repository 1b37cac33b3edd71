"""Text output: one line per measurement as it lands, naive ratios, targets, profiles."""

from __future__ import annotations

import io
import pstats
from pathlib import Path

from bench.figures import (
    DeliveryRow,
    Figures,
    FixedFloorRow,
    ManyRow,
    MemoryRow,
    PollRow,
    StateLayout,
)

HEADER = (
    f"{'N':>9} {'impl':<8} {'cycle':<9} {'wall s':>8} {'CPU µs/enr':>10} {'peak RSS MB':>11} "
    f"{'Redis B/enr':>11} {'Redis CPU µs/enr':>16} {'HTTP req (min)':>15} {'events (exp)':>13}"
)
_MB = 1024.0  # ru_maxrss is in KiB
WHOLE_TARGET_SIZE = 100_000
WHOLE_TARGET_US = 12.0  # per enrollment, unchanged re-poll, startup included
NAIVE_TARGET_RATIO = 5.0  # the naive poller's whole process against seqwatch's, CPU


def _count(value: int, expected: int) -> str:
    mark = "" if value == expected else " !"
    return f"{value} ({expected}){mark}"


def poll_line(row: PollRow) -> str:
    floor = row.impl == "floor"  # its Redis figures include its own setup: not shown
    redis_bytes = f"{'-':>11}" if floor else f"{row.bytes_per_tracked:>11.1f}"
    redis_cpu = f"{'-':>16}" if floor else f"{row.redis_cpu_us_per_enrollment:>16.1f}"
    return (
        f"{row.size:>9} {row.impl:<8} {row.cycle:<9} {row.wall_s:>8.2f} "
        f"{row.cpu_us_per_enrollment:>10.1f} {row.peak_rss_kb / _MB:>11.1f} "
        f"{redis_bytes} {redis_cpu} "
        f"{_count(row.requests, row.min_requests):>15} "
        f"{_count(row.events, row.expected_events):>13}"
    )


MANY_HEADER = (
    f"{'sources':>9} {'enr each':>8} {'cycle':<13} {'wall s':>8} {'enr/s':>8} {'CPU µs/enr':>10} "
    f"{'CPU ms/poll':>11} {'peak RSS MB':>11} {'(setup)':>8} {'polls ok':>9} "
    f"{'HTTP req (min)':>15} {'events (exp)':>13}"
)


def many_line(row: ManyRow) -> str:
    return (
        f"{row.sources:>9} {row.per_source:>8} {row.cycle + (' arq' if row.arq else ''):<13} "
        f"{row.wall_s:>8.2f} {row.enrollments_per_second:>8.0f} {row.cpu_us_per_enrollment:>10.1f} "
        f"{row.cpu_ms_per_poll:>11.2f} {row.peak_rss_kb / _MB:>11.1f} "
        f"{row.rss_before_kb / _MB:>8.1f} {row.ok:>9} "
        f"{_count(row.requests, row.min_requests):>15} {_count(row.events, 0):>13}"
    )


def fixed_floor_line(row: FixedFloorRow) -> str:
    return (
        f"  {'floor of the fixed CPU':>22}: {row.cpu_ms_per_poll:.2f} ms per source "
        f"({row.sources} sources, max_jobs {row.max_jobs}: the same GET by aiohttp and 2 Redis "
        f"round trips by redis-py, nothing else; {row.requests} requests)"
    )


def _of_floor(figures: Figures, one: ManyRow) -> str:
    floor = figures.fixed_floor
    if floor is None or not floor.cpu_s:
        return ""
    ratio = one.cpu_ms_per_poll / floor.cpu_ms_per_poll
    return f", {ratio:.2f}x its floor of {floor.cpu_ms_per_poll:.2f} ms in this run"


def many_figures(figures: Figures) -> list[str]:
    """The fixed CPU of a poll (a one-enrollment source's unchanged re-poll) and the marginal
    CPU of an enrollment (the difference to the larger sources, per extra enrollment)."""
    one = figures.many_row(per_source=1, cycle="unchanged")
    big = [r for r in figures.many if r.per_source > 1 and r.cycle == "unchanged" and not r.arq]
    if one is None:
        return []
    lines = [
        f"  fixed CPU per source poll: {one.cpu_ms_per_poll:.2f} ms "
        f"({one.sources} one-enrollment sources, unchanged re-poll, max_jobs {one.max_jobs}"
        f"{_of_floor(figures, one)})"
    ]
    for row in big:
        extra = row.cpu_s - one.cpu_ms_per_poll / 1e3 * row.sources
        per = extra * 1e6 / max(1, row.enrollments - row.sources)
        lines.append(
            f"  marginal CPU per enrollment at {row.per_source} per source: {per:.1f} µs "
            f"(fixed {one.cpu_ms_per_poll * 1e3 / row.per_source:.1f} µs/enr of it amortized)"
        )
    return lines


def layout_line(layout: StateLayout) -> str:
    encodings = ", ".join(f"{k} {v}" for k, v in sorted(layout.encodings.items()))
    per = layout.bucket_bytes / max(1, layout.tracked)
    return (
        f"{'':>9} state: {layout.buckets} buckets ({encodings}), fullest {layout.largest_bucket} "
        f"fields; MEMORY USAGE of the buckets = {per:.1f} B per tracked enrollment"
    )


MEMORY_HEADER = (
    f"  {'ids':<28} {'N':>8} {'B/enrollment':>12} {'field B':>8} {'value B':>8} {'buckets':>8}"
    "  encodings"
)


def memory_line(row: MemoryRow) -> str:
    encodings = ", ".join(f"{k} {v}" for k, v in sorted(row.encodings.items()))
    return (
        f"  {row.kind:<28} {row.size:>8} {row.bytes_per_enrollment:>12.1f} "
        f"{row.field_bytes:>8.1f} {row.value_bytes:>8.1f} {row.buckets:>8}  {encodings}"
    )


def delivery_line(row: DeliveryRow) -> str:
    guard = "SSRF guard on " if row.guard else "guard off     "
    check = (
        ""
        if row.guard_refuses_loopback is None
        else ("; guard refused 127.0.0.1: " + ("yes" if row.guard_refuses_loopback else "NO"))
    )
    return (
        f"  signed webhooks, {guard}: {row.per_second:8.0f} deliveries/s "
        f"({row.delivered}/{row.events} delivered in {row.wall_s:.2f} s, "
        f"{row.concurrency} in flight, "
        f"{row.cpu_us_per_delivery:.0f} µs CPU each, peak RSS {row.peak_rss_kb / _MB:.1f} MB, "
        f"receiver verified {row.verified}/{row.received}{check})\n"
        f"  {'floor: raw keep-alive POSTs':>31}: {row.floor_per_second:8.0f} /s "
        f"(same signed events, {row.concurrency} connections, same receiver); "
        f"seqwatch = {row.of_floor:.2f} x floor"
    )


def show(item: object) -> str:
    if isinstance(item, PollRow):
        return poll_line(item)
    if isinstance(item, StateLayout):
        return layout_line(item)
    if isinstance(item, DeliveryRow):
        return delivery_line(item)
    if isinstance(item, ManyRow):
        return many_line(item)
    if isinstance(item, FixedFloorRow):
        return fixed_floor_line(item)
    if isinstance(item, MemoryRow):
        return memory_line(item)
    return str(item)


def ratios(figures: Figures, size: int) -> str | None:
    parts = []
    for cycle in ("baseline", "unchanged", "changed"):
        ours, naive = figures.poll(size, "seqwatch", cycle), figures.poll(size, "naive", cycle)
        if ours is None or naive is None:
            return None
        wall = naive.wall_s / ours.wall_s if ours.wall_s else 0.0
        cpu = naive.cpu_s / ours.cpu_s if ours.cpu_s else 0.0
        parts.append(f"{cycle} {wall:.1f}x wall / {cpu:.1f}x worker CPU")
    return f"{'':>9} naive ÷ seqwatch: " + "; ".join(parts)


def floor_ratios(figures: Figures, size: int) -> str | None:
    """seqwatch's worker CPU over the floor's, per enrollment, measured in the same run."""
    parts = []
    for cycle, label in (("unchanged", "unchanged re-poll"), ("changed", "1% changed")):
        ours, floor = figures.poll(size, "seqwatch", cycle), figures.poll(size, "floor", cycle)
        if ours is None or floor is None or not floor.cpu_s:
            continue
        ratio = ours.cpu_us_per_enrollment / floor.cpu_us_per_enrollment
        parts.append(
            f"{label} {ratio:.2f}x ({ours.cpu_us_per_enrollment:.1f} / "
            f"{floor.cpu_us_per_enrollment:.1f} µs)"
        )
    if not parts:
        return None
    return f"{'':>9} seqwatch ÷ floor (worker CPU per enrollment): " + "; ".join(parts)


def _floor_targets(figures: Figures) -> list[str]:
    lines = []
    for cycle, limit in (("unchanged", 2.0), ("changed", 3.0)):
        for size in (100_000, 1_000_000):
            ours, floor = figures.poll(size, "seqwatch", cycle), figures.poll(size, "floor", cycle)
            what = f"{cycle} poll <= {limit:.0f}x the floor at {size}"
            if ours is None or floor is None or not floor.cpu_s:
                lines.append(_target(None, what, "not measured"))
                continue
            ratio = ours.cpu_us_per_enrollment / floor.cpu_us_per_enrollment
            lines.append(_target(ratio <= limit, what, f"{ratio:.2f}x"))
    return lines


def _mark(ok: bool | None) -> str:
    return {True: "[PASS]", False: "[MISS]", None: "[n/a ]"}[ok]


def _peak_mb(figures: Figures, size: int) -> float | None:
    rows = [r for r in figures.polls if r.size == size and r.impl == "seqwatch"]
    return max(r.peak_rss_kb for r in rows) / _MB if rows else None


def _target(ok: bool | None, what: str, value: str) -> str:
    return f"  {_mark(ok)} {what}: {value}"


def _cpu_targets(figures: Figures) -> list[str]:
    lines = []
    for size in (100_000, 1_000_000):
        row = figures.poll(size, "seqwatch", "unchanged")
        what = f"unchanged re-poll <= 20 µs worker CPU per enrollment at {size}"
        if row is None:
            lines.append(_target(None, what, "not measured"))
        else:
            value = f"{row.cpu_us_per_enrollment:.1f} µs"
            lines.append(_target(row.cpu_us_per_enrollment <= 20, what, value))
    return lines


def _memory_target(figures: Figures, sizes: list[int]) -> str:
    what = "Redis <= 48 B per tracked enrollment at 1000000"
    row = figures.poll(1_000_000, "seqwatch", "unchanged")
    if row is not None:
        return _target(row.bytes_per_tracked <= 48, what, f"{row.bytes_per_tracked:.1f} B")
    largest = figures.poll(sizes[-1], "seqwatch", "unchanged") if sizes else None
    seen = f" (at {largest.size}: {largest.bytes_per_tracked:.1f} B)" if largest else ""
    return _target(None, what, "not measured" + seen)


def _bytes_targets(figures: Figures) -> list[str]:
    lines = []
    for label, limit, integer in (("integer", 40, True), ("UUID", 48, False)):
        rows = [r for r in figures.memory if r.kind.startswith("integer") == integer]
        what = f"Redis <= {limit} B per enrollment, {label} ids, every size measured"
        if not rows:
            lines.append(_target(None, what, "not measured"))
            continue
        worst = max(rows, key=lambda r: r.bytes_per_enrollment)
        value = f"worst {worst.bytes_per_enrollment:.1f} B ({worst.kind}, {worst.size})"
        lines.append(_target(worst.bytes_per_enrollment <= limit, what, value))
    return lines


def _rss_target(figures: Figures, sizes: list[int]) -> str:
    what = "worker peak RSS grows <= 50 MB from 10k to 1M"
    low, high = _peak_mb(figures, 10_000), _peak_mb(figures, 1_000_000)
    if low is not None and high is not None:
        return _target(high - low <= 50, what, f"{high - low:+.1f} MB")
    first, last = (
        (_peak_mb(figures, sizes[0]), _peak_mb(figures, sizes[-1])) if sizes else (None, None)
    )
    seen = ""
    if len(sizes) > 1 and first is not None and last is not None:
        seen = f" ({sizes[0]} -> {sizes[-1]}: {last - first:+.1f} MB)"
    return _target(None, what, "not measured" + seen)


def _naive_target(figures: Figures) -> str:
    what = "unchanged re-poll >= 5x faster than naive at 100000"
    ours = figures.poll(100_000, "seqwatch", "unchanged")
    naive = figures.poll(100_000, "naive", "unchanged")
    if ours is None or naive is None or not ours.wall_s:
        return _target(None, what, "not measured")
    speedup = naive.wall_s / ours.wall_s
    return _target(speedup >= 5, what, f"{speedup:.1f}x (wall time)")


def _whole_targets(figures: Figures) -> list[str]:
    at = WHOLE_TARGET_SIZE
    what = f"whole `seqwatch poll` process <= {WHOLE_TARGET_US:.0f} µs per enrollment at {at}"
    versus = f"naive poller's whole process >= {NAIVE_TARGET_RATIO:.0f}x seqwatch's CPU at {at}"
    ours = figures.whole_row(at, "seqwatch", "unchanged")
    naive = figures.whole_row(at, "naive", "unchanged")
    if ours is None:
        return [
            _target(None, what, "not measured (--whole-sizes 100000)"),
            _target(None, versus, "not measured"),
        ]
    per = ours.cpu_us_per_enrollment
    lines = [
        _target(
            per <= WHOLE_TARGET_US, what, f"{per:.1f} µs ({ours.cpu_s:.2f} s CPU, startup included)"
        )
    ]
    if naive is None:
        return [*lines, _target(None, versus, "not measured")]
    ratio = naive.cpu_s / ours.cpu_s
    return [*lines, _target(ratio >= NAIVE_TARGET_RATIO, versus, f"{ratio:.1f}x")]


def _delivery_target(figures: Figures) -> str:
    what = ">= 2,000 signed webhook deliveries/s per process, SSRF guard on"
    guarded = [d for d in figures.deliveries if d.guard]
    if not guarded:
        return _target(None, what, "not measured")
    row = guarded[0]
    return _target(
        row.per_second >= 2000,
        what,
        f"{row.per_second:.0f}/s ({row.of_floor:.2f} x the raw floor of "
        f"{row.floor_per_second:.0f}/s)",
    )


def _many_targets(figures: Figures) -> list[str]:
    one = figures.many_row(per_source=1, cycle="unchanged")
    fixed = _target(
        None if one is None else one.cpu_ms_per_poll <= 1.0,
        "fixed CPU per source poll <= 1 ms",
        "not measured" if one is None else f"{one.cpu_ms_per_poll:.2f} ms{_of_floor(figures, one)}",
    )
    rows = [
        r
        for r in figures.many
        if r.sources >= 1000 and r.per_source >= 100 and r.cycle == "unchanged"
    ]
    what = "one worker polls 1,000 sources x 100 at >= 20k enrollments/s"
    if not rows:
        return [fixed, _target(None, what, "not measured (--many-sources 1000x100)")]
    lines = [fixed]
    for row in rows:
        rate = row.enrollments_per_second
        via = "an arq worker" if row.arq else "the job function"
        lines.append(
            _target(
                rate >= 20_000, what, f"{rate:,.0f}/s unchanged, {via}, max_jobs {row.max_jobs}"
            )
        )
    return lines


def _requests_target(figures: Figures) -> str:
    what = "API requests per poll = minimum (largest page size)"
    polls = [r for r in figures.polls if r.impl == "seqwatch"]
    if not polls:
        return _target(None, what, "not measured")
    at_minimum = sum(r.requests == r.min_requests for r in polls)
    return _target(at_minimum == len(polls), what, f"{at_minimum}/{len(polls)} polls")


def summary(figures: Figures) -> list[str]:
    sizes = sorted({r.size for r in figures.polls if r.impl == "seqwatch"})
    right = sum(r.events == r.expected_events for r in figures.polls)
    return [
        "Targets (2-core machine; informational: the run never fails on them)",
        *_cpu_targets(figures),
        *_floor_targets(figures),
        _memory_target(figures, sizes),
        *_bytes_targets(figures),
        _rss_target(figures, sizes),
        _naive_target(figures),
        *_whole_targets(figures),
        _delivery_target(figures),
        *_many_targets(figures),
        _requests_target(figures),
        f"  check: events produced = expected in {right}/{len(figures.polls)} polls",
    ]


def profile_lines(path: Path, *, top: int = 25) -> list[str]:
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return [line for line in out.getvalue().splitlines() if line.strip()]
