"""Whole processes, startup included: `seqwatch poll` as an operator runs it, against the naive
poller as a process of its own, on the same synthetic account.

The other poll figures measure the poll alone (bench/child.py leaves imports and setup out).
Here every CPU second the process spends counts, from exec to exit (the kernel's rusage of the
reaped child): interpreter start, imports, config, connections, the poll and, for a changed
listing, delivering its events to the peer's webhook.

Both run with their bytecode cache written first, as an install has it (bench/bytecode.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench.bytecode import compile_bytecode
from bench.child import Job, Kind
from bench.delivery import SECRET
from bench.figures import WholeRow
from bench.procs import PeerProcess, RedisBox
from bench.synth import API_KEY, Account, Cycle

SOURCE = "bench"
KEY_ENV = "SEQWATCH_BENCH_REPLY_KEY"
HOOK_SECRET_ENV_NAME = "SEQWATCH_BENCH_HOOK_SECRET"  # noqa: S105 (a name, not a secret)
# The fake never throttles: a quota this high never makes the poll wait.
UNPACED_PER_MINUTE = 60_000_000


def config_text(*, peer_url: str, redis_url: str) -> str:
    """One Reply.io source on the peer and one signed webhook to it, as a user writes them."""
    return (
        f'[redis]\nurl = "{redis_url}"\n\n'
        f'[[sources]]\nname = "{SOURCE}"\nprovider = "replyio"\napi_key = "env:{KEY_ENV}"\n'
        f'base_url = "{peer_url}"\napi_version = "v4"\n'
        f"requests_per_minute = {UNPACED_PER_MINUTE}\ntimeout = 600\n\n"
        f'[[destinations]]\nname = "hook"\ntype = "webhook"\nurl = "{peer_url}/hook"\n'
        f'secret = "env:{HOOK_SECRET_ENV_NAME}"\nevents = ["*"]\nallow_private_network = true\n'
    )


# Forks the measured command from a small fresh interpreter and reports its rusage: Linux
# starts a child's peak RSS at its parent's (the high-water mark survives exec), so a command
# spawned straight from this bench process would report at least the bench's own peak.
_LAUNCHER = """
import os, sys
cpu, out, *argv = sys.argv[1:]
if cpu:
    os.sched_setaffinity(0, {int(cpu)})
pid = os.fork()
if pid == 0:
    try:
        os.execv(argv[0], argv)
    except OSError as exc:
        sys.stderr.write(f"cannot run {argv[0]}: {exc}\\n")
    os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(out, "w") as f:
    f.write(f"{usage.ru_utime + usage.ru_stime} {usage.ru_maxrss}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _reaped(
    argv: list[str], *, env: dict[str, str], cpu: int | None, work: Path
) -> tuple[float, int]:
    """Runs argv to its end, pinned to `cpu`; (user + system CPU seconds, peak RSS KiB) of that
    process alone."""
    out = work / "reaped.txt"
    out.unlink(missing_ok=True)
    pinned = "" if cpu is None else str(cpu)
    done = subprocess.run(
        [sys.executable, "-S", "-c", _LAUNCHER, pinned, str(out), *argv],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace")[-2000:]
        raise RuntimeError(f"bench: {argv[1:4]} exited {done.returncode}: {tail}")
    cpu_s, peak_kb = out.read_text().split()
    return float(cpu_s), int(peak_kb)


class WholeRunner:
    """Baseline, unchanged and 1%-changed polls, each by a fresh process, per implementation."""

    def __init__(
        self, peer: PeerProcess, *, work_dir: Path, seed: int, per_sequence: int, cpu: int | None
    ) -> None:
        self.peer = peer
        self.work_dir = work_dir
        self.seed = seed
        self.per_sequence = per_sequence
        self.cpu = cpu
        self.seqwatch = str(Path(sys.executable).with_name("seqwatch"))
        self.compiled = compile_bytecode()

    def measure(self, size: int, *, repeat: int, cpu_of_service: int | None) -> list[WholeRow]:
        account = Account(enrollments=size, seed=self.seed, per_sequence=self.per_sequence)
        rows: list[WholeRow] = []
        for impl in (Kind.SEQWATCH, Kind.NAIVE):
            series = [
                self._series(account, impl, n=n, service_cpu=cpu_of_service) for n in range(repeat)
            ]
            for cycle in Cycle:
                rows.append(min((s[cycle] for s in series), key=lambda row: row.cpu_s))
        return rows

    def _series(
        self, account: Account, impl: Kind, *, n: int, service_cpu: int | None
    ) -> dict[Cycle, WholeRow]:
        size = account.enrollments
        work = self.work_dir / f"whole-{impl}-{size}-{n}"
        rows: dict[Cycle, WholeRow] = {}
        with RedisBox(work / "redis", cpu=service_cpu) as box:
            config = work / "seqwatch.toml"
            config.write_text(config_text(peer_url=self._peer_url, redis_url=box.url))
            for cycle in Cycle:
                self.peer.call(
                    "/_bench/account",
                    {
                        "enrollments": size,
                        "seed": account.seed,
                        "per_sequence": account.per_sequence,
                        "cycle": cycle.value,
                    },
                )
                argv, env = self._command(impl, config=config, redis_url=box.url, work=work)
                started = time.monotonic()
                cpu_s, peak = _reaped(argv, env=env, cpu=self.cpu, work=work)
                posts = int(self.peer.call("/_bench/stats")["hook_posts"])
                rows[cycle] = WholeRow(
                    size=size,
                    impl=impl.value,
                    cycle=cycle.value,
                    cpu_s=cpu_s,
                    wall_s=time.monotonic() - started,
                    peak_rss_kb=peak,
                    events=posts,
                    expected_events=account.changed_count if cycle is Cycle.CHANGED else 0,
                )
        return rows

    @property
    def _peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer.port}"

    def _command(
        self, impl: Kind, *, config: Path, redis_url: str, work: Path
    ) -> tuple[list[str], dict[str, str]]:
        env = {**os.environ, KEY_ENV: API_KEY, HOOK_SECRET_ENV_NAME: SECRET}
        if impl is Kind.SEQWATCH:
            return [self.seqwatch, "--config", str(config), "--log-level", "warning", "poll"], env
        # The naive poller in a process of its own; bench.child adds only orjson and a meter.
        job = Job(kind=Kind.NAIVE, peer_port=self.peer.port, redis_url=redis_url)
        job_file = work / "naive.job.json"
        job_file.write_bytes(job.to_json())
        argv = [sys.executable, "-m", "bench.child", str(job_file), str(work / "naive.out.json")]
        return argv, env


WHOLE_HEADER = (
    f"{'N':>9} {'impl':<8} {'cycle':<9} {'wall s':>8} {'CPU s':>8} {'CPU µs/enr':>10} "
    f"{'peak RSS MB':>11} {'events (exp)':>13}"
)


def whole_lines(rows: list[WholeRow]) -> list[str]:
    """The table, then per size the unchanged re-poll and the naive ratio (the summary judges
    them against the targets: bench/report.py)."""
    lines = [WHOLE_HEADER]
    for row in rows:
        lines.append(
            f"{row.size:>9} {row.impl:<8} {row.cycle:<9} {row.wall_s:>8.2f} {row.cpu_s:>8.2f} "
            f"{row.cpu_us_per_enrollment:>10.1f} {row.peak_rss_kb / 1024:>11.1f} "
            f"{f'{row.events} ({row.expected_events})':>13}"
            + ("" if row.events == row.expected_events else " !")
        )
    by_key = {(r.size, r.impl, r.cycle): r for r in rows}
    for size in sorted({r.size for r in rows}):
        ours = by_key.get((size, Kind.SEQWATCH.value, Cycle.UNCHANGED.value))
        naive = by_key.get((size, Kind.NAIVE.value, Cycle.UNCHANGED.value))
        if ours is None or naive is None:
            continue
        ratio = naive.cpu_s / ours.cpu_s
        per = ours.cpu_us_per_enrollment
        lines.append(
            f"  whole process at {size}: seqwatch unchanged re-poll {per:.1f} µs/enr "
            f"({ours.cpu_s:.2f} s CPU, startup included); the naive poller uses {ratio:.1f}x "
            f"seqwatch's CPU"
        )
    return lines
