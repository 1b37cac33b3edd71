"""Shared pieces of the end-to-end CLI tests: fake providers, receivers, config, subprocesses.

The product runs as a real `seqwatch` subprocess (`python -m worker.app.cli`); the fake Reply.io
and Unify APIs and the webhook/Slack receivers run in this process on 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from standardwebhooks import Webhook

from notifiers.signing import parse_secret, verify
from worker.demo.fakes.faults import FaultPlan
from worker.demo.fakes.receiver import Delivery, WebhookReceiver
from worker.demo.fakes.replyio import ReplyioApp, ReplyioWorld
from worker.demo.fakes.server import FakeServer
from worker.demo.fakes.unify import ManualClock, UnifyApp, UnifyWorld

ROOT = Path(__file__).resolve().parents[2]
REPLY_KEY = "rk-live-5d1c0a7e9b3f4e21"
UNIFY_KEY = "uk-live-8a2f6c4d0e9b7a13"
WRONG_KEY = "rk-wrong-0f9e8d7c6b5a4321"
HOOK_SECRET = "whsec_" + base64.b64encode(b"e2e-webhook-signing-key-0123456789").decode()
SLACK_PATH = "/services/T0E2E0001/B0E2E0002/sl4ckS3cretT0ken9x8y7w6"
BAD_HOOK_SECRET = "whsec_n0t*base64*Zq9SecretTail"  # set but invalid: must never be quoted
ENV_NAMES = {
    "reply": "SW_E2E_REPLY_KEY",
    "unify": "SW_E2E_UNIFY_KEY",
    "hook": "SW_E2E_HOOK_SECRET",
    "slack": "SW_E2E_SLACK_URL",
}
UNIFY_T0 = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)
STATE_KEYS = {"status", "raw_status", "step", "step_id", "replied", "bounced", "opted_out"}
DATA_KEYS = {
    *("id", "source", "provider", "enrollment_id", "sequence", "contact"),
    *("previous", "current", "detected_at"),
}
RUN_TIMEOUT = 60.0


def _verifier(secret: str) -> Callable[[Mapping[str, str], bytes], bool]:
    key = parse_secret(secret)

    def check(headers: Mapping[str, str], body: bytes) -> bool:
        return verify(key=key, headers=headers, body=body, now=int(time.time()))

    return check


@dataclass(kw_only=True)
class Fakes:
    """Fake provider worlds, their servers and fault plans, and the two receivers."""

    reply: ReplyioWorld
    reply_faults: FaultPlan
    reply_server: FakeServer
    unify: UnifyWorld
    unify_clock: ManualClock
    unify_faults: FaultPlan
    unify_server: FakeServer
    unify_ids: dict[str, str]
    hook: WebhookReceiver
    slack: WebhookReceiver

    @property
    def slack_url(self) -> str:
        return self.slack.url + SLACK_PATH

    def unify_update(self, who: str, **fields: Any) -> None:
        """Change one Unify enrollment one second later than anything before."""
        self.unify_clock.advance(1)
        self.unify.update(self.unify_ids[who], **fields)

    def unify_enroll(self, who: str, email: str) -> str:
        self.unify_clock.advance(1)
        first, last = who.split()
        seq = self.unify_ids["sequence"]
        self.unify_ids[who] = self.unify.enroll(seq, email=email, first_name=first, last_name=last)
        return self.unify_ids[who]

    def newest_unify_update(self) -> str:
        return max(str(e["updated_at"]) for e in self.unify.enrollments())


def _populate_reply(world: ReplyioWorld) -> None:
    world.add_sequence(100, "Q4 outbound", steps=3)
    world.add_sequence(200, "Webinar follow-up", steps=2)
    people = [
        (100, 1, "john.doe@company.com", "John", "Doe", "Tech Solutions Inc"),
        (100, 2, "ana@reyes.example", "Ana", "Reyes", "Reyes Ltd"),
        (100, 3, "kim@park.example", "Kim", "Park", None),
        (200, 4, "lee@chen.example", "Lee", "Chen", "Chen & Co"),
        (200, 5, "max@brown.example", "Max", "Brown", None),
    ]
    for seq, cid, email, first, last, company in people:
        world.add_contact(seq, cid, email=email, first=first, last=last, company=company)


def _populate_unify(world: UnifyWorld, clock: ManualClock) -> dict[str, str]:
    ids = {"sequence": world.add_sequence("Enterprise expansion")}
    for who in ("Maya Lopez", "Omar Haddad", "Kim Park", "Lee Chen", "Max Brown"):
        clock.advance(1)  # distinct updated_at values: the newest one is unambiguous
        first, last = who.split()
        ids[who] = world.enroll(
            ids["sequence"], email=f"{first.lower()}@{last.lower()}.example",
            first_name=first, last_name=last,
        )  # fmt: skip
    return ids


@contextmanager
def running_fakes() -> Iterator[Fakes]:
    reply, unify_clock = ReplyioWorld(), ManualClock(UNIFY_T0)
    unify = UnifyWorld(clock=unify_clock, seed=11)
    _populate_reply(reply)
    unify_ids = _populate_unify(unify, unify_clock)
    reply_faults, unify_faults = FaultPlan(), FaultPlan()
    fakes = Fakes(
        reply=reply, reply_faults=reply_faults,
        reply_server=FakeServer(ReplyioApp(reply, api_key=REPLY_KEY, faults=reply_faults)),
        unify=unify, unify_clock=unify_clock, unify_faults=unify_faults,
        unify_server=FakeServer(UnifyApp(unify, api_key=UNIFY_KEY, faults=unify_faults)),
        unify_ids=unify_ids,
        hook=WebhookReceiver(verify=_verifier(HOOK_SECRET)),
        slack=WebhookReceiver(slack=True),
    )  # fmt: skip
    servers: list[FakeServer | WebhookReceiver] = [
        fakes.reply_server, fakes.unify_server, fakes.hook, fakes.slack,
    ]  # fmt: skip
    try:
        for server in servers:
            server.start()
        yield fakes
    finally:
        reply_faults.wake()
        unify_faults.wake()
        for server in servers:
            server.stop()


@dataclass(frozen=True, slots=True, kw_only=True)
class Setup:
    """A config file on disk and the environment its env: references need."""

    config: Path
    env: dict[str, str]
    secrets: tuple[str, ...]
    cwd: Path

    def with_env(self, **changes: str | None) -> Setup:
        env = dict(self.env)
        for name, value in changes.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return Setup(config=self.config, env=env, secrets=self.secrets, cwd=self.cwd)

    def with_config(self, path: Path) -> Setup:
        return Setup(config=path, env=self.env, secrets=self.secrets, cwd=self.cwd)

    def with_text(self, text: str, *, name: str = "edited.toml") -> Setup:
        path = self.config.with_name(name)
        path.write_text(text)
        return Setup(config=path, env=self.env, secrets=self.secrets, cwd=self.cwd)


def config_text(
    fakes: Fakes,
    *,
    redis_url: str,
    poll_interval: float = 300,
    sources: Iterable[str] = ("reply", "unify"),
    slack: bool = True,
) -> str:
    wanted = set(sources)
    parts = [f'[redis]\nurl = "{redis_url}"\n']
    blocks = {
        "reply": ("replyio", ENV_NAMES["reply"], fakes.reply_server.base_url),
        "unify": ("unify", ENV_NAMES["unify"], fakes.unify_server.base_url),
    }
    for name, (provider, env_name, base_url) in blocks.items():
        if name in wanted:
            parts.append(
                f'[[sources]]\nname = "{name}"\nprovider = "{provider}"\n'
                f'api_key = "env:{env_name}"\nbase_url = "{base_url}"\n'
                f"poll_interval = {poll_interval}\nrequests_per_minute = 60000\ntimeout = 5\n"
            )
    parts.append(
        f'[[destinations]]\nname = "hook"\ntype = "webhook"\nurl = "{fakes.hook.url}/seqwatch"\n'
        f'secret = "env:{ENV_NAMES["hook"]}"\nevents = ["*"]\nallow_private_network = true\n'
    )
    if slack:
        parts.append(
            f'[[destinations]]\nname = "slack"\ntype = "slack"\n'
            f'url = "env:{ENV_NAMES["slack"]}"\nevents = ["enrollment.*"]\n'
            "allow_private_network = true\n"
        )
    return "\n".join(parts)


def make_setup(tmp_path: Path, fakes: Fakes, *, redis_url: str, **options: Any) -> Setup:
    config = tmp_path / "seqwatch.toml"
    config.write_text(config_text(fakes, redis_url=redis_url, **options))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEQWATCH_", "SW_E2E_"))}
    # The working tree, not whatever copy of seqwatch happens to be installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update({
        ENV_NAMES["reply"]: REPLY_KEY,
        ENV_NAMES["unify"]: UNIFY_KEY,
        ENV_NAMES["hook"]: HOOK_SECRET,
        ENV_NAMES["slack"]: fakes.slack_url,
    })  # fmt: skip
    secrets = (
        *(REPLY_KEY, UNIFY_KEY, WRONG_KEY, HOOK_SECRET, HOOK_SECRET[6:], SLACK_PATH),
        *(BAD_HOOK_SECRET, BAD_HOOK_SECRET[6:]),
    )
    return Setup(config=config, env=env, secrets=secrets, cwd=tmp_path)


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:
        return f"{self.args} -> {self.code}\n--stdout--\n{self.stdout}\n--stderr--\n{self.stderr}"


def command(setup: Setup, *args: str) -> list[str]:
    return [sys.executable, "-m", "worker.app.cli", "--config", str(setup.config), *args]


def assert_no_secrets(text: str, secrets: Iterable[str], *, where: str) -> None:
    for secret in secrets:
        assert secret not in text, f"a secret leaked into {where}"


def run(setup: Setup, *args: str, config: bool = True) -> Result:
    """Run one seqwatch command to completion; every run is checked for leaked secrets."""
    argv = command(setup, *args) if config else [sys.executable, "-m", "worker.app.cli", *args]
    done = subprocess.run(
        argv, env=setup.env, cwd=setup.cwd, capture_output=True, text=True,
        timeout=RUN_TIMEOUT, check=False,
    )  # fmt: skip
    result = Result(args=tuple(args), code=done.returncode, stdout=done.stdout, stderr=done.stderr)
    assert_no_secrets(result.output, setup.secrets, where=f"the output of {args}")
    assert "Traceback" not in result.output, str(result)
    return result


def stderr_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def document(delivery: Delivery) -> dict[str, Any]:
    """Check one signed webhook delivery against SPEC §6 and return its JSON document."""
    assert delivery.verified is True, "signature did not verify"
    Webhook(HOOK_SECRET).verify(delivery.body, dict(delivery.headers))  # an independent check
    assert delivery.headers.get("content-type", "").startswith("application/json")
    assert delivery.headers.get("webhook-timestamp", "").isdigit()
    doc = json.loads(delivery.body)
    assert set(doc) == {"type", "timestamp", "data"}
    data = doc["data"]
    assert set(data) == DATA_KEYS, sorted(data)
    assert delivery.webhook_id == data["id"]
    assert data["id"].startswith("evt_")
    assert data["detected_at"] == doc["timestamp"]
    assert doc["timestamp"].endswith("Z")
    datetime.fromisoformat(doc["timestamp"])
    assert set(data["sequence"]) == {"id", "name"}
    assert set(data["contact"]) == {"id", "email", "name", "company"}
    for side in ("previous", "current"):
        if data[side] is not None:
            # `reason` only where the provider gives one (SPEC §5: e.g. a Reply.io auto-reply)
            keys = set(data[side]) - {"reason"}
            assert keys == STATE_KEYS, (side, sorted(data[side]))
    return dict(doc)


@dataclass(slots=True)
class Seen:
    """Accepted webhook deliveries, checked, in arrival order."""

    docs: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, receiver: WebhookReceiver) -> Seen:
        accepted = receiver.accepted
        ids = [d.webhook_id for d in accepted]
        assert len(ids) == len(set(ids)), f"duplicate webhook-id delivered: {ids}"
        return cls([document(d) for d in accepted])

    def kinds(self) -> list[tuple[str, str]]:
        """Sorted (type, enrollment_id) pairs."""
        return sorted((d["type"], d["data"]["enrollment_id"]) for d in self.docs)

    def one(self, event_type: str, enrollment_id: str) -> dict[str, Any]:
        found = [
            d["data"] for d in self.docs
            if d["type"] == event_type and d["data"]["enrollment_id"] == enrollment_id
        ]  # fmt: skip
        assert len(found) == 1, (event_type, enrollment_id, self.kinds())
        return dict(found[0])


def wait_until(predicate: Callable[[], bool], *, timeout: float, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()
