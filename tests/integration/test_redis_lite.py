"""worker.store.redis_lite and the status plans on a real Redis: `seqwatch status` reads through the
small blocking client what the redis-py path reads, with the URLs seqwatch documents."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis as redis_sync
from redis.asyncio import Redis

from tests.integration._redis_proc import free_port
from worker.delivery.outbox import Attempts
from worker.ops.status import workers_plan
from worker.ops.status_report import status, status_lite
from worker.store import keys
from worker.store.reads import run_sync
from worker.store.redis_lite import LiteRedis, RedisUnavailable, supports

SOURCES = ["reply-emea", "unify-main"]
DESTINATIONS = ["crm", "slack"]


@pytest.fixture
def lite(redis_url: str) -> Iterator[LiteRedis]:
    client = LiteRedis(redis_url)
    yield client
    client.close()


def test_the_documented_url_forms_are_supported_and_others_left_to_redis_py() -> None:
    assert supports("redis://127.0.0.1:6379/0")
    assert supports("redis://:pw@redis.internal/2")
    assert supports("rediss://user:pw@redis.example.com:6380")
    assert supports("unix:///run/redis.sock?db=3")
    assert not supports("redis://127.0.0.1:6379/0?ssl_cert_reqs=none")
    assert not supports("http://127.0.0.1:6379")


async def _seed(store: Redis) -> None:
    now = time.time()
    await store.hset(  # type: ignore[misc]
        keys.meta("reply-emea"),
        mapping={
            "last_poll_at": repr(now - 30), "last_outcome": "failed", "last_ok_at": repr(now - 90),
            "last_error": "provider error (HTTP 503)", "consecutive_failures": "3",
            "health": "failing", "tracked": "1200", "events_total": "17", "baseline": "1",
            "last_poll_requests": "4", "quarantined": "1",
            "quarantine_first": '{"enrollment_id":"7","field":"status","error":"unknown"}',
            "state_lost": f"vanished|{now - 600!r}",
        },
    )  # fmt: skip
    await store.hset(keys.schedule(), "reply-emea", repr(now + 240))  # type: ignore[misc]
    await store.hset(  # type: ignore[misc]
        keys.progress("unify-main"), mapping={"started_at": repr(now - 12), "pages": 3}
    )
    await store.set(keys.lease("unify-main"), "9", px=5000)
    await store.hset(keys.provider_memory("reply-emea"), "api_version", "v4")  # type: ignore[misc]
    await store.hset(  # type: ignore[misc]
        keys.destination_health("crm"),
        mapping={"last_outcome": "failed", "last_success_at": repr(now - 100), "last_error": "x"},
    )
    await store.zadd(keys.due("reply-emea", "crm"), {"e1": 1, "e2": 2, "e3": 3})
    tried = Attempts(count=3, first_failure_ms=1, last_error="HTTP 500")
    await store.hset(keys.attempts("reply-emea", "crm"), "e1", tried.encode())  # type: ignore[misc]
    await store.zadd(keys.dead("unify-main", "slack"), {"d1": (now - 10) * 1000})
    await store.set(keys.worker_health("host-1-ab12"), "j_complete=3", ex=60)


async def test_status_through_the_lite_client_equals_the_redis_py_path(
    store: Redis, lite: LiteRedis
) -> None:
    await _seed(store)
    try:
        by_lite, by_redis_py = io.StringIO(), io.StringIO()
        options = {"as_json": True, "sources": SOURCES, "destinations": DESTINATIONS}
        code_lite = status_lite(lite, by_lite, **options)  # type: ignore[arg-type]
        code_async = await status(store, by_redis_py, **options)  # type: ignore[arg-type]
        assert code_lite == code_async == 1  # reply-emea and both destinations are failing
        ours, theirs = json.loads(by_lite.getvalue()), json.loads(by_redis_py.getvalue())
        ours.pop("checked_at"), theirs.pop("checked_at")
        for doc in (ours, theirs):  # elapsed time moves between the two reads
            for source in doc["sources"]:
                if source["poll_in_progress"]:
                    source["poll_in_progress"].pop("elapsed_seconds")
        assert ours == theirs
        reply, unify = ours["sources"]
        assert (reply["failing"], reply["tracked"], reply["api_version"]) == (True, 1200, "v4")
        assert reply["quarantine_error"]["field"] == "status"
        assert reply["state_lost"]["reason"] == "vanished"
        assert unify["poll_in_progress"]["pages"] == 3
        crm, slack = ours["destinations"]
        assert (crm["pending"], crm["retrying"], crm["failing"]) == (3, 1, True)
        assert (slack["dead"], slack["failing"]) == (1, True)  # dead since its last success
        assert ours["workers"] == [{"id": "host-1-ab12", "health": "j_complete=3"}]
    finally:
        await store.flushdb()


def test_workers_are_found_across_many_scan_round_trips(redis_url: str) -> None:
    url = redis_url.rsplit("/", 1)[0] + "/4"
    with redis_sync.Redis.from_url(url) as sync:
        pipe = sync.pipeline(transaction=False)
        for n in range(25_000):
            pipe.set(f"seqwatch:{{s{n % 50}}}:st:{n}", "x")
        for n in range(12):
            pipe.set(keys.worker_health(f"host-{n:02d}"), f"j_complete={n}", ex=60)
        pipe.execute()
        client = LiteRedis(url)
        try:
            found = run_sync(workers_plan(), client)
        finally:
            client.close()
            sync.flushdb()
    assert [w.id for w in found] == [f"host-{n:02d}" for n in range(12)]
    assert found[3].health == "j_complete=3"


def test_password_user_and_database_from_the_url(redis_url: str) -> None:
    parts = urlsplit(redis_url)
    with redis_sync.Redis.from_url(redis_url) as admin:
        admin.execute_command("ACL", "SETUSER", "statusreader", "on", ">s3cret p@ss", "~*", "+@all")
        try:
            with redis_sync.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/5") as db5:
                db5.set("marker", "in db 5")
            good = LiteRedis(f"redis://statusreader:s3cret%20p%40ss@{parts.netloc}/5")
            assert good.pipeline([("GET", "marker")]) == ["in db 5"]
            good.close()
            bad = LiteRedis(f"redis://statusreader:wrong@{parts.netloc}/5")
            with pytest.raises(RedisUnavailable) as refused:
                bad.pipeline([("GET", "marker")])
            assert refused.value.kind == "AuthenticationError"
            bad.close()
        finally:
            admin.execute_command("ACL", "DELUSER", "statusreader")
            with redis_sync.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/5") as db5:
                db5.flushdb()


def test_nothing_listening_is_a_connection_error() -> None:
    client = LiteRedis(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(RedisUnavailable) as caught:
        client.pipeline([("PING",)])
    assert caught.value.kind == "ConnectionError"


def test_an_error_reply_raises_and_the_connection_stays_usable(lite: LiteRedis) -> None:
    with pytest.raises(RedisUnavailable) as caught:
        lite.pipeline([("PING",), ("NOSUCHCOMMAND",)])
    assert caught.value.kind == "ResponseError"
    assert lite.pipeline([("PING",), ("ECHO", "still here")]) == ["PONG", "still here"]
