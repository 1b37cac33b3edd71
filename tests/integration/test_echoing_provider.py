"""A provider that echoes secrets back: no output path shows them (SPEC §7, issue 9 case 6).

The "Reply.io" here answers every request 422 with a body quoting the webhook secret, its key
material, the Slack URL, the API key, and secret-shaped values nobody configured. `seqwatch poll`
(stdout, stderr logs), `status` (text and --json), Redis (every key and value, `last_error`
included) and the `source.failing` notice delivered to a webhook are all searched for them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from tests.integration._cli_helpers import (
    HOOK_SECRET,
    REPLY_KEY,
    Fakes,
    Setup,
    assert_no_secrets,
    make_setup,
    run,
)
from worker.demo.fakes.server import FakeServer, Request, Response

UNCONFIGURED = (
    "https://hooks.slack.com/services/T0ECHO001/B0ECHO002/someoneElsesToken77",
    "whsec_c29tZW9uZSBlbHNlJ3Mgc2VjcmV0IGtleQ==",
)


class EchoingApp:
    """Answers everything with a 422 whose message quotes secrets."""

    def __init__(self, echoed: str) -> None:
        self.echoed = echoed

    def handle(self, request: Request) -> Response:
        return Response.json(
            {"status": "invalid_request", "detail": f"rejected: {self.echoed}"}, status=422
        )


@pytest.fixture
def echo(fakes: Fakes) -> Iterator[FakeServer]:
    said = " ".join((HOOK_SECRET, HOOK_SECRET[6:], fakes.slack_url, REPLY_KEY, *UNCONFIGURED))
    server = FakeServer(EchoingApp(said))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def setup(
    tmp_path: Path, fakes: Fakes, echo: FakeServer, redis_url: str, sync_redis: Redis
) -> Setup:
    base = make_setup(tmp_path, fakes, redis_url=redis_url, sources=("reply",))
    text = base.config.read_text()
    text = text.replace(fakes.reply_server.base_url, echo.base_url)
    text = text.replace("timeout = 5\n", "timeout = 5\nfailure_threshold = 1\n")
    # The webhook also asks for source notices, so `source.failing` is delivered and searched.
    text = text.replace('events = ["*"]', 'events = ["*", "source.*"]')
    edited = base.with_text(text)
    return Setup(
        config=edited.config,
        env=edited.env,
        secrets=(*edited.secrets, fakes.slack_url, *UNCONFIGURED),
        cwd=edited.cwd,
    )


def test_an_echoed_secret_reaches_no_output(setup: Setup, fakes: Fakes, sync_redis: Redis) -> None:
    polled = run(setup, "--log-level", "DEBUG", "poll")  # run() greps stdout and stderr
    assert polled.code == 1
    assert "HTTP 422" in polled.stdout
    assert "[REDACTED]" in polled.stdout
    text = run(setup, "status")
    assert "HTTP 422" in text.stdout
    as_json = run(setup, "status", "--json")
    assert "HTTP 422" in as_json.stdout

    dump = []
    for key in sync_redis.scan_iter():
        kind = sync_redis.type(key)
        if kind == "hash":
            dump.append(json.dumps(sync_redis.hgetall(key)))
        elif kind == "string":
            dump.append(str(sync_redis.get(key)))
        elif kind == "zset":
            dump.append(json.dumps(sync_redis.zrange(key, 0, -1)))
    assert any("HTTP 422" in entry for entry in dump)  # last_error is there, scrubbed
    assert_no_secrets("\n".join(dump), setup.secrets, where="Redis")

    notices = [json.loads(d.body) for d in fakes.hook.accepted]
    failing = [n for n in notices if n["type"] == "source.failing"]
    assert len(failing) == 1
    assert "HTTP 422" in failing[0]["data"]["error"]
    assert_no_secrets(
        "\n".join(d.body.decode() for d in fakes.hook.deliveries), setup.secrets, where="events"
    )
