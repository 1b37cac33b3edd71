"""A source failing N polls in a row: status, one error log, opt-in health notices, recovery."""

from __future__ import annotations

import orjson
import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from tests.contract.provider_replyio import ReplyioHarness
from tests.contract.providers import API_KEY, Sleeps
from worker.app.deps import Deps
from worker.app.service import run_poll
from worker.delivery.outbox import Outbox, Route
from worker.errors import SourceError
from worker.ops.status import source_status

SOURCE = "health-src"


def deps_for(store: Redis, reply: ReplyioHarness) -> Deps:
    return Deps(
        redis=store,
        sources={SOURCE: reply.runtime(name=SOURCE, sleep=Sleeps())},
        poll_intervals={SOURCE: 60},
        failure_thresholds={SOURCE: 3},
        destinations={},
        routes=(
            Route(destination="ops", events=("source.*",), sources=()),
            Route(destination="crm", events=("*",), sources=()),
        ),
    )


async def pending(store: Redis, destination: str) -> list[dict[str, object]]:
    due = await Outbox(store, source=SOURCE, destination=destination).due_now(
        now_ms=2**52, limit=100
    )
    return [orjson.loads(body) for _, body in due if body is not None]


async def test_failing_is_reported_once_and_recovery_once(
    store: Redis, reply: ReplyioHarness
) -> None:
    reply.seed(2)
    deps = deps_for(store, reply)
    await run_poll(deps, SOURCE)
    reply.faults.add("status", status=500, times=1000)
    with capture_logs() as logs:
        for _ in range(5):
            with pytest.raises(SourceError):
                await run_poll(deps, SOURCE)
    failing_logs = [e for e in logs if e["event"] == "source_failing"]
    assert len(failing_logs) == 1
    assert failing_logs[0]["log_level"] == "error"
    assert failing_logs[0]["consecutive_failures"] == 3
    assert all(e["log_level"] != "error" for e in logs if e["event"] == "poll")
    assert API_KEY not in repr(logs)

    status = await source_status(store, SOURCE)
    assert status.failing
    assert status.consecutive_failures == 5
    notices = await pending(store, "ops")
    assert [n["type"] for n in notices] == ["source.failing"]
    assert notices[0]["data"]["source"] == SOURCE  # type: ignore[index]
    assert "HTTP 500" in notices[0]["data"]["error"]  # type: ignore[index]
    assert await pending(store, "crm") == []  # "*" does not opt into health notices

    reply.faults.clear()
    with capture_logs() as logs:
        await run_poll(deps, SOURCE)
        await run_poll(deps, SOURCE)
    assert [e["event"] for e in logs].count("source_recovered") == 1
    status = await source_status(store, SOURCE)
    assert not status.failing
    assert status.consecutive_failures == 0
    types = [n["type"] for n in await pending(store, "ops")]
    assert types == ["source.failing", "source.recovered"]
    ids = [n["data"]["id"] for n in await pending(store, "ops")]  # type: ignore[index]
    assert len(set(ids)) == 2
