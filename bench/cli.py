"""`python -m bench [--sizes 10000,100000,1000000] [--profile] ...` (run from the repo root).

Serves a synthetic Reply.io account from a separate process, runs real seqwatch polls (and a
naive baseline) against fresh Redis servers, then measures signed webhook delivery. Prints
figures and a target summary; always exits 0 unless the harness itself breaks.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import orjson

from bench import report
from bench.child import Kind
from bench.figures import Figures
from bench.procs import PeerProcess, RedisBox
from bench.run import Options, Runner
from bench.synth import PAGE_SIZE
from bench.whole import WholeRunner, whole_lines
from config.settings import DEFAULT_MAX_JOBS

NAIVE_DEFAULT_MAX = 100_000


def _sizes(text: str) -> tuple[int, ...]:
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        sizes = tuple(int(part.replace("_", "")) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of integers") from None
    if any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError("sizes must be positive")
    return sizes


def _many(text: str) -> tuple[int, int]:
    sources, sep, each = text.lower().partition("x")
    try:
        pair = (int(sources.replace("_", "")), int(each.replace("_", "")))
    except ValueError:
        pair = (0, 0)
    if not sep or min(pair) < 1:
        raise argparse.ArgumentTypeError("SOURCESxENROLLMENTS, e.g. 200x1000")
    return pair


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    add = parser.add_argument
    add("--sizes", type=_sizes, default=(10_000,), help="enrollment counts (default: 10000)")
    add(
        "--naive-sizes",
        type=_sizes,
        help="sizes to run the naive baseline at (default: those <= 100000; at 1M it makes "
        "2M Redis round trips per poll, about 10 minutes)",
    )
    add(
        "--memory-sizes",
        type=_sizes,
        default=(1_000, 10_000, 100_000),
        help="sizes of the Redis bytes-per-enrollment table, per id kind (default: 1000,10000,"
        "100000; none: skip)",
    )
    add(
        "--memory-all",
        action="store_true",
        help="the memory table for every provider's ids (default: Reply.io and Unify)",
    )
    add("--seed", type=int, default=1, help="synthetic data seed (default 1)")
    add("--per-sequence", type=int, default=10_000, help="enrollments per sequence")
    add(
        "--many-sources",
        type=_many,
        metavar="SxN",
        help="also poll S sources of N enrollments each as one `seqwatch run` worker does "
        "(the arq job function, [worker] max_jobs at a time; e.g. 1000x100), and S sources of "
        "one enrollment for the fixed CPU of a poll, beside its floor (the same GETs and Redis "
        "round trips alone, bench/fixed_floor.py)",
    )
    add(
        "--max-jobs",
        type=int,
        default=DEFAULT_MAX_JOBS,
        help=f"[worker] max_jobs for --many-sources (default {DEFAULT_MAX_JOBS})",
    )
    add(
        "--many-arq",
        action="store_true",
        help="--many-sources also through a real arq worker, as `seqwatch run` runs: its tick "
        "claims and enqueues every source, arq runs the poll jobs (queue bookkeeping included)",
    )
    add(
        "--whole-sizes",
        type=_sizes,
        default=(),
        help="also time whole processes, startup included: `seqwatch poll` as a user runs it "
        "against the naive poller as its own process, at these sizes (e.g. 100000; default: "
        "none)",
    )
    add("--deliveries", type=int, default=2000, help="webhook events to deliver (0: skip)")
    # This 2-core box is noisy: one run of the same poll varies by a quarter from the next, so
    # by default each measurement is the best of three (seqwatch and the floor alike).
    add("--repeat", type=int, default=3, help="runs per measurement; the best is shown (default 3)")
    add("--profile", action="store_true", help="cProfile one extra unchanged re-poll per size")
    add("--no-pin", action="store_true", help="let the OS place worker, Redis and the fake")
    add("--work-dir", type=Path, help="keep job files, Redis logs and profiles here")
    add("--json", type=Path, help="also write every figure to this JSON file")
    return parser


def _placement(*, pin: bool) -> tuple[int | None, int | None]:
    """(worker CPU, Redis and fake CPU): the worker gets a CPU of its own."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not pin or len(cpus) < 2:
        return None, None
    return cpus[0], cpus[1]


def _say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _whole(options: Options, peer: PeerProcess, sizes: tuple[int, ...], figures: Figures) -> None:
    _say()
    _say(
        "Whole processes (exec to exit, rusage of the reaped process): `seqwatch poll` and the "
        "naive poller, each cycle a fresh process, bytecode cached as an install has it"
    )
    runner = WholeRunner(
        peer,
        work_dir=options.work_dir,
        seed=options.seed,
        per_sequence=options.per_sequence,
        cpu=options.worker_cpu,
    )
    if not runner.compiled:
        _say(
            "  (some of seqwatch's modules could not be compiled to bytecode here: their "
            "processes compile them again, and pay for it)"
        )
    rows = [
        row
        for size in sizes
        for row in runner.measure(size, repeat=options.repeat, cpu_of_service=options.service_cpu)
    ]
    figures.whole.extend(rows)
    for line in whole_lines(rows):
        _say(line)


def _run(options: Options, *, keep_files: bool, whole_sizes: tuple[int, ...] = ()) -> None:
    with RedisBox(options.work_dir / "redis-version") as box:
        version = box.version
    pinned = (
        f"; worker on CPU {options.worker_cpu}, Redis and the fake on CPU {options.service_cpu}"
        if options.worker_cpu is not None
        else "; not pinned"
    )
    _say(
        f"seqwatch bench: sizes {', '.join(map(str, options.sizes))}; seed {options.seed}; "
        f"{options.per_sequence} enrollments per sequence; page size {PAGE_SIZE}; "
        f"Python {platform.python_version()}, Redis {version}, {os.cpu_count()} CPUs"
        + pinned
        + (f"; best of {options.repeat} runs (least worker CPU)" if options.repeat > 1 else "")
    )
    with PeerProcess(cpu=options.service_cpu) as peer:
        runner = Runner(options, peer, emit=lambda item: _say(report.show(item)))
        _say()
        _say(report.HEADER)
        for size in options.sizes:
            runner.polls(size, Kind.SEQWATCH)
            _say(report.floor_ratios(runner.figures, size) or "")
            if size in options.naive_sizes:
                runner.polls(size, Kind.NAIVE)
                _say(report.ratios(runner.figures, size) or "")
        if options.many_sources is not None:
            sources, each = options.many_sources
            _say()
            _say(
                f"Many sources: one worker polls {sources} sources of {each} enrollments, "
                f"then {sources} of 1, as `seqwatch run` does with max_jobs {options.max_jobs}"
            )
            _say(report.MANY_HEADER)
            runner.many(sources, each)
            for line in report.many_figures(runner.figures):
                _say(line)
        if options.memory_sizes:
            _say()
            _say("Redis memory: INFO used_memory per stored enrollment, written as polls write")
            _say(report.MEMORY_HEADER)
            runner.memory()
        if options.deliveries > 0:
            _say()
            _say(f"Delivery: one process drains {options.deliveries} events from the outbox")
            runner.deliveries()
        if whole_sizes:
            _whole(options, peer, whole_sizes, runner.figures)
    figures = runner.figures
    for size, path in figures.profiles.items():
        _say()
        saved = f"; saved to {path}" if keep_files else ""
        _say(f"Profile: unchanged re-poll at {size} (cProfile inflates times{saved})")
        for line in report.profile_lines(path):
            _say("  " + line)
    _say()
    for line in report.summary(figures):
        _say(line)
    if options.json_to is not None:
        options.json_to.write_bytes(
            orjson.dumps(figures, default=str, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    worker_cpu, service_cpu = _placement(pin=not args.no_pin)
    with tempfile.TemporaryDirectory(prefix="seqwatch-bench-") as scratch:
        work_dir = args.work_dir or Path(scratch)
        work_dir.mkdir(parents=True, exist_ok=True)
        _run(
            Options(
                sizes=args.sizes,
                naive_sizes=(
                    tuple(s for s in args.sizes if s <= NAIVE_DEFAULT_MAX)
                    if args.naive_sizes is None
                    else args.naive_sizes
                ),
                seed=args.seed,
                memory_sizes=args.memory_sizes,
                memory_all=args.memory_all,
                per_sequence=args.per_sequence,
                deliveries=args.deliveries,
                profile=args.profile,
                repeat=max(1, args.repeat),
                work_dir=work_dir.resolve(),
                json_to=args.json,
                many_sources=args.many_sources,
                max_jobs=max(1, args.max_jobs),
                many_arq=args.many_arq,
                worker_cpu=worker_cpu,
                service_cpu=service_cpu,
            ),
            keep_files=args.work_dir is not None,
            whole_sizes=args.whole_sizes,
        )
    return 0
