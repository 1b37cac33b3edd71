"""`seqwatch demo` as a person runs it: narration and events in step, Ctrl-C ends it cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration._cli_helpers import ROOT, wait_until

EVENT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z enrollment\.\w+ +.+ \[\w+-demo\]$")


def _demo(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEQWATCH_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen(
        [sys.executable, "-m", "worker.app.cli", "demo", *args], cwd=tmp_path, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def test_each_narrated_change_is_followed_by_its_events(tmp_path: Path) -> None:
    demo = _demo(tmp_path, "--duration", "6")
    output, _ = demo.communicate(timeout=120)
    assert demo.returncode == 0, output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    narrated = [i for i, line in enumerate(lines) if line.startswith("  ~ ")]
    summary = lines.index("summary:")
    assert len(narrated) >= 3, output
    for start, end in zip(narrated, [*narrated[1:], summary], strict=True):
        between = lines[start + 1 : end]
        assert between, f"no event after {lines[start]!r}"
        assert all(EVENT_LINE.match(line) for line in between), between
    shown = sum(1 for line in lines if EVENT_LINE.match(line))
    counted = sum(int(line.rsplit(": ", 1)[1]) for line in lines[summary + 1 : -1])
    assert shown == counted
    assert lines[-1] == f"  webhook deliveries received: {shown}, signature verified: {shown}"


def test_ctrl_c_ends_the_demo_with_the_summary_so_far(tmp_path: Path) -> None:
    demo = _demo(tmp_path, "--duration", "60")
    assert demo.stdout is not None
    seen: list[str] = []

    def narrated() -> bool:
        line = demo.stdout.readline() if demo.stdout else ""
        seen.append(line)
        return line.startswith("  ~ ")

    assert wait_until(narrated, timeout=60, every=0), "".join(seen)
    time.sleep(1)
    os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole group
    rest, _ = demo.communicate(timeout=60)
    output = "".join(seen) + rest
    assert demo.returncode == 130, output
    assert "Traceback" not in output
    assert "\nsummary (interrupted):\n" in output
    assert "signature verified" in output.splitlines()[-1]
