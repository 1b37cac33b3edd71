"""`seqwatch run` as a real subprocess that a test can SIGKILL, SIGSTOP or SIGTERM.

Output goes to files (a full pipe would block the daemon). Only processes started here are
ever signalled, by their own handle.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import IO, Any

from tests.integration._cli_helpers import Setup, assert_no_secrets, command

STOP_TIMEOUT = 30.0


class Daemon:
    def __init__(self, setup: Setup, log_dir: Path, name: str) -> None:
        self.setup = setup
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._file: IO[bytes] | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        self._file = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command(self.setup, "run"), env=self.setup.env, cwd=self.setup.cwd,
            stdout=self._file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def events(self) -> list[dict[str, Any]]:
        """The daemon's JSON log lines (stderr is not a terminal, so logs are JSON)."""
        found = []
        for line in self.output.splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))
        return found

    def logged(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == event]

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, wherever it is: no cleanup, no lease release, no ack."""
        if self.running():
            assert self.process is not None
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def terminate(self) -> tuple[int, float]:
        """SIGTERM; (exit status, seconds it took to exit)."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=STOP_TIMEOUT)
        return code, time.monotonic() - started

    def close(self) -> None:
        self.kill()
        if self._file is not None:
            self._file.close()
            self._file = None

    def check_output(self) -> None:
        text = self.output
        assert "Traceback" not in text, text[-3000:]
        assert_no_secrets(text, self.setup.secrets, where=f"the output of daemon {self.name}")


class Daemons:
    """Every daemon one test started; all are killed at teardown if still running."""

    def __init__(self, setup: Setup, log_dir: Path) -> None:
        self.setup = setup
        self.log_dir = log_dir
        self.started: list[Daemon] = []

    def spawn(self, name: str | None = None) -> Daemon:
        daemon = Daemon(self.setup, self.log_dir, name or f"daemon-{len(self.started) + 1}")
        self.started.append(daemon)
        return daemon.start()

    def running(self) -> list[Daemon]:
        return [d for d in self.started if d.running()]

    def check_outputs(self) -> None:
        for daemon in self.started:
            daemon.check_output()

    def close(self) -> None:
        for daemon in self.started:
            daemon.close()
