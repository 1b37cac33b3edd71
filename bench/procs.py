"""The processes a benchmark run owns: the peer (fake API + receiver), fresh Redis servers,
and one measured child per measurement."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import httpx
import orjson
import redis

from bench.child import Job
from bench.meter import Usage
from worker.store.embedded_redis import EmbeddedRedis


def pin(pid: int, cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(pid, {cpu})


class PeerProcess:
    """`python -m bench.peer` in its own process; controlled over HTTP."""

    def __init__(self, *, cpu: int | None = None) -> None:
        self._cpu = cpu
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._http = httpx.Client(timeout=600.0)  # rendering 1M records takes seconds

    def __enter__(self) -> PeerProcess:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.peer"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError("bench: the peer process did not start")
        self.port = int(line)
        pin(self._process.pid, self._cpu)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._http.close()
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)

    def call(self, path: str, doc: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}{path}"
        response = (
            self._http.get(url) if doc is None else self._http.post(url, content=orjson.dumps(doc))
        )
        return cast("dict[str, Any]", orjson.loads(response.raise_for_status().content))


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisFigures:
    used_memory: int
    cpu_s: float


class RedisBox:
    """A fresh, non-persistent redis-server on a free port (never the default 6379)."""

    def __init__(self, data_dir: Path, *, cpu: int | None = None) -> None:
        self._server = EmbeddedRedis(data_dir=data_dir, persistent=False)
        self._cpu = cpu
        self.url = ""
        self.version = ""
        self.client: redis.Redis | None = None

    def __enter__(self) -> RedisBox:
        self.url = self._server.start()
        self.client = redis.Redis.from_url(self.url, decode_responses=True)
        server = cast("dict[str, Any]", self.client.info("server"))
        self.version = str(server["redis_version"])
        pin(int(server["process_id"]), self._cpu)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.client is not None:
            self.client.close()
        self._server.stop()

    @property
    def redis(self) -> redis.Redis:
        assert self.client is not None
        return self.client

    def figures(self) -> RedisFigures:
        with contextlib.suppress(redis.ResponseError):  # not jemalloc: nothing to purge
            self.redis.execute_command("MEMORY", "PURGE")  # type: ignore[no-untyped-call]
        memory = cast("dict[str, Any]", self.redis.info("memory"))
        cpu = cast("dict[str, Any]", self.redis.info("cpu"))
        return RedisFigures(
            used_memory=int(memory["used_memory"]),
            cpu_s=float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildResult:
    facts: dict[str, Any]
    usage: Usage


def run_child(job: Job, *, work_dir: Path, name: str) -> ChildResult:
    job_file, result_file = work_dir / f"{name}.job.json", work_dir / f"{name}.result.json"
    job_file.write_bytes(job.to_json())
    result_file.unlink(missing_ok=True)
    subprocess.run(
        [sys.executable, "-m", "bench.child", str(job_file), str(result_file)], check=True
    )
    doc = orjson.loads(result_file.read_bytes())
    return ChildResult(facts=doc["facts"], usage=Usage.from_dict(doc["usage"]))
