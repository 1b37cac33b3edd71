"""`python -m bench.startup`: wall time of `seqwatch --help` and `seqwatch status` (target 0.25 s).

Each command runs as a fresh process (the installed console script), RUNS times after one
warm-up; the minimum and median are printed. The bytecode cache is as an install has it
(bench/bytecode.py). `status` reads a real Redis (started here, on a free port,
non-persistent) through a one-source, one-destination config.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bytecode import compile_bytecode
from worker.store.embedded_redis import EmbeddedRedis

TARGET_S = 0.25


def _time(argv: list[str], *, runs: int, cwd: Path) -> list[float]:
    # Warms the page cache.
    subprocess.run(argv, cwd=cwd, capture_output=True, check=False)
    took = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=cwd, capture_output=True, check=False)
        took.append(time.perf_counter() - started)
        assert done.returncode in (0, 1), done.stderr.decode()[-500:]
    return took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.startup")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    compile_bytecode()
    script = shutil.which("seqwatch") or str(Path(sys.executable).with_name("seqwatch"))
    with tempfile.TemporaryDirectory(prefix="seqwatch-startup-") as tmp:
        root = Path(tmp)
        redis = EmbeddedRedis(data_dir=root / "redis", persistent=False)
        url = redis.start()
        try:
            (root / "seqwatch.toml").write_text(
                f'[redis]\nurl = "{url}"\n[[sources]]\nname = "s"\nprovider = "replyio"\n'
                'api_key = "k"\n[[destinations]]\nname = "c"\ntype = "console"\n'
            )
            print(f"{'command':<20} {'min':>8} {'median':>8}   target <= {TARGET_S} s")
            for name, command in (("seqwatch --help", ["--help"]), ("seqwatch status", ["status"])):
                took = _time([script, *command], runs=args.runs, cwd=root)
                print(f"{name:<20} {min(took):>7.3f}s {statistics.median(took):>7.3f}s")
        finally:
            redis.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
