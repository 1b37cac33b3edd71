"""A fake world that changes over time, what each change must produce, and the checker.

Both fake providers (Reply.io: three sequences, one page each; Unify: one page of enrollments)
answer slowly, and the webhook receiver is slow, so a process killed at a random moment is often
inside a poll or a delivery. Each change is applied to an enrollment only once the previous
change of that enrollment has reached the receiver, so every change is one observable step: the
checker then knows exactly which events (types, previous and current state) each change must
produce, independently of the product's code (SPEC §5 tables, rewritten here).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from standardwebhooks import Webhook

from tests.integration._cli_helpers import (
    ENV_NAMES,
    HOOK_SECRET,
    REPLY_KEY,
    ROOT,
    UNIFY_KEY,
    UNIFY_T0,
    Setup,
)
from worker.demo.fakes.faults import FaultPlan
from worker.demo.fakes.receiver import Delivery, WebhookReceiver
from worker.demo.fakes.replyio import ReplyioApp, ReplyioWorld
from worker.demo.fakes.server import FakeServer, Request, Response
from worker.demo.fakes.unify import ManualClock, UnifyApp, UnifyWorld

State = dict[str, Any]
REPLY_SEQUENCES = (100, 200, 300)
REPLY_STATUS = {
    "Active": "active",
    "Paused": "paused",
    "Inactive": "blocked",
    "Finished": "finished",
}  # OutOfOffice is left out: it normalizes like Paused, so Paused <-> OutOfOffice is silent
_RUNNING, _HALTED = {"pending", "active"}, {"paused", "blocked"}


def status_event(previous: str, current: str) -> str:
    """SPEC §5: the event for a change of normalized status."""
    if current in _HALTED and previous in _RUNNING:
        return "enrollment.paused"
    if current == "active" and previous in _HALTED:
        return "enrollment.resumed"
    if current in ("finished", "removed"):
        return f"enrollment.{current}"
    return "enrollment.status_changed"


def reply_state(record: Mapping[str, Any]) -> State:
    return {
        "status": REPLY_STATUS[record["status"]],
        "raw_status": record["status"],
        "step": record["currentStep"],
        "step_id": None,
        "replied": None,
        "bounced": None,
        "opted_out": record["isOptedOut"],
    }


def unify_state(record: Mapping[str, Any]) -> State:
    raw = record["status"]
    status = {"DRAFT": "pending", "IN_PROGRESS": "active", "FINISHED": "finished"}[raw]
    if record["is_canceled"] or record["is_excluded"]:
        status = "removed"
    elif status == "active" and record["is_blocked"]:
        status = "blocked"
    elif status == "active" and record["is_paused"]:
        status = "paused"
    return {
        "status": status,
        "raw_status": raw,
        "step": None,
        "step_id": None,
        "replied": record["is_replied"],
        "bounced": record["is_bounced"],
        "opted_out": record["is_opted_out"],
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """One applied change and exactly what it must produce."""

    enrollment_id: str
    kind: str
    types: frozenset[str]
    previous: State | None
    current: State | None


class SlowApp:
    """Serves the receiver after a delay: a kill often lands between a POST and its ack.

    Requests are served side by side (one thread each); `active` counts those being served.
    """

    def __init__(self, inner: WebhookReceiver, *, delay: float) -> None:
        self.inner = inner
        self.delay = delay
        self._lock = threading.Lock()
        self.active = 0
        self.most_active = 0

    def handle(self, request: Request) -> Response:
        with self._lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            time.sleep(self.delay)
            return self.inner.handle(request)
        finally:
            with self._lock:
                self.active -= 1


def _verifier(secret: str) -> Callable[[Mapping[str, str], bytes], bool]:
    """Checked on arrival by the standardwebhooks library (it raises when it does not verify)."""
    hook = Webhook(secret)

    def check(headers: Mapping[str, str], body: bytes) -> bool:
        hook.verify(body, dict(headers))
        return True

    return check


@dataclass(slots=True)
class Report:
    deliveries: int = 0
    distinct_events: int = 0
    redelivered: int = 0
    changes: int = 0
    enrollments: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)


class SoakWorld:
    def __init__(
        self,
        rng: random.Random,
        *,
        provider_delay: float = 0.4,
        receiver_delay: float = 0.15,
        contacts_per_sequence: int = 10,
        unify_enrollments: int = 25,
    ) -> None:
        self.rng = rng
        self.lock = threading.Lock()
        self.reply = ReplyioWorld()
        self.unify_clock = ManualClock(UNIFY_T0)
        self.unify = UnifyWorld(clock=self.unify_clock, seed=rng.randrange(1 << 30))
        self.reply_faults, self.unify_faults = FaultPlan(), FaultPlan()
        # Every listing request is slow, so polls take a few seconds.
        self.reply_faults.add(
            "timeout", times=10**9, path_contains="/contacts", delay=provider_delay
        )
        self.unify_faults.add("timeout", times=10**9, delay=provider_delay)
        self.reply_server = FakeServer(
            ReplyioApp(
                self.reply,
                api_key=REPLY_KEY,
                faults=self.reply_faults,
                versions=frozenset({"v4"}),  # a v4-only account: found by auto-detection
            )
        )
        self.unify_server = FakeServer(
            UnifyApp(self.unify, api_key=UNIFY_KEY, faults=self.unify_faults)
        )
        self.receiver = WebhookReceiver(verify=_verifier(HOOK_SECRET))
        self.hook = SlowApp(self.receiver, delay=receiver_delay)
        self.hook_server = FakeServer(self.hook)
        self.changes: list[Change] = []
        self.pending: dict[str, Change] = {}
        self.gone: set[str] = set()
        self.unify_sequence = self.unify.add_sequence("Soak sequence")
        self._next_contact = 1000
        self._next_person = 0
        self._seen = 0
        for seq in REPLY_SEQUENCES:
            self.reply.add_sequence(seq, f"Sequence {seq}", steps=9)
            for _ in range(contacts_per_sequence):
                self._add_reply(seq)
        for _ in range(unify_enrollments):
            self._add_unify()

    # -- serving -------------------------------------------------------------------------
    def start(self) -> None:
        for server in (self.reply_server, self.unify_server, self.hook_server):
            server.start()

    def stop(self) -> None:
        self.reply_faults.wake()
        self.unify_faults.wake()
        for server in (self.reply_server, self.unify_server, self.hook_server):
            server.stop()

    def setup(self, tmp_path: Path, *, redis_url: str | None) -> Setup:
        """Config and environment for `seqwatch` against this world (no url: embedded Redis)."""
        if redis_url:
            parts = [f'[redis]\nurl = "{redis_url}"\n']
        else:
            parts = [f'[redis]\ndata_dir = "{tmp_path / "data"}"\n']
        blocks = (
            ("reply", "replyio", ENV_NAMES["reply"], self.reply_server.base_url),
            ("unify", "unify", ENV_NAMES["unify"], self.unify_server.base_url),
        )
        for name, provider, env_name, base_url in blocks:
            parts.append(
                f'[[sources]]\nname = "{name}"\nprovider = "{provider}"\n'
                f'api_key = "env:{env_name}"\nbase_url = "{base_url}"\n'
                "poll_interval = 1\nrequests_per_minute = 60000\ntimeout = 10\n"
            )
        parts.append(
            f'[[destinations]]\nname = "hook"\ntype = "webhook"\n'
            f'url = "{self.hook_server.base_url}/seqwatch"\n'
            f'secret = "env:{ENV_NAMES["hook"]}"\nevents = ["*"]\nallow_private_network = true\n'
        )
        config = tmp_path / "soak.toml"
        config.write_text("\n".join(parts))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SEQWATCH_", "SW_E2E_"))}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        env.update({ENV_NAMES["reply"]: REPLY_KEY, ENV_NAMES["unify"]: UNIFY_KEY})
        env[ENV_NAMES["hook"]] = HOOK_SECRET
        secrets = (REPLY_KEY, UNIFY_KEY, HOOK_SECRET, HOOK_SECRET[6:])
        return Setup(config=config, env=env, secrets=secrets, cwd=tmp_path)

    # -- the world's truth ---------------------------------------------------------------
    def state(self, enrollment_id: str) -> State | None:
        if ":" in enrollment_id:
            seq, _, contact = enrollment_id.partition(":")
            record = self.reply.contact(int(seq), int(contact))
            return reply_state(record) if record else None
        found = self.unify.enrollment(enrollment_id)
        return unify_state(found) if found else None

    def enrollment_ids(self) -> list[str]:
        reply = [f"{s}:{c['contactId']}" for s in REPLY_SEQUENCES for c in self.reply.contacts(s)]
        return reply + [str(e["id"]) for e in self.unify.enrollments()]

    def _add_reply(self, seq: int) -> str:
        self._next_contact += 1
        cid = self._next_contact
        self.reply.add_contact(seq, cid, email=f"c{cid}@soak.example", first="C", last=str(cid))
        return f"{seq}:{cid}"

    def _add_unify(self) -> str:
        self._next_person += 1
        self.unify_clock.advance(1)
        n = self._next_person
        return self.unify.enroll(
            self.unify_sequence, email=f"p{n}@soak.example", first_name="P", last_name=str(n)
        )

    # -- changes -------------------------------------------------------------------------
    def mutate(self) -> Change | None:
        """Apply one random change to an enrollment whose last change has been seen."""
        with self.lock:
            if self.rng.random() < 0.1:
                return self._record(self._enroll())
            idle = [
                e for e in self.enrollment_ids() if e not in self.pending and e not in self.gone
            ]
            if not idle:
                return None
            target = self.rng.choice(idle)
            before = self.state(target)
            assert before is not None
            if ":" in target:  # Reply.io ids are "{sequence}:{contact}"
                return self._record(self._reply_change(target, before))
            return self._record(self._unify_change(target, before))

    def _record(self, change: Change | None) -> Change | None:
        if change is None:
            return None
        assert change.current == self.state(change.enrollment_id), change
        if change.types:
            self.changes.append(change)
            self.pending[change.enrollment_id] = change
        if change.current is None:
            self.gone.add(change.enrollment_id)
        return change

    def _enroll(self) -> Change:
        if self.rng.random() < 0.5:
            enrollment_id = self._add_reply(self.rng.choice(REPLY_SEQUENCES))
        else:
            enrollment_id = self._add_unify()
        return Change(
            enrollment_id=enrollment_id, kind="enroll", types=frozenset({"enrollment.enrolled"}),
            previous=None, current=self.state(enrollment_id),
        )  # fmt: skip

    def _changed(self, enrollment_id: str, kind: str, before: State, types: set[str]) -> Change:
        return Change(
            enrollment_id=enrollment_id, kind=kind, types=frozenset(types), previous=before,
            current=self.state(enrollment_id),
        )  # fmt: skip

    def _reply_change(self, enrollment_id: str, before: State) -> Change:
        seq, _, contact = enrollment_id.partition(":")
        s, c = int(seq), int(contact)
        roll = self.rng.random()
        if roll < 0.1:
            self.reply.remove_contact(s, c)  # gone from listings: removed after two of them
            return Change(
                enrollment_id=enrollment_id, kind="remove",
                types=frozenset({"enrollment.removed"}), previous=before, current=None,
            )  # fmt: skip
        if roll < 0.4:
            self.reply.advance_step(s, c)
            return self._changed(enrollment_id, "step", before, {"enrollment.step_advanced"})
        if roll < 0.5 and not before["opted_out"]:
            self.reply.opt_out(s, c)
            return self._changed(enrollment_id, "opt_out", before, {"enrollment.opted_out"})
        targets = [r for r, n in REPLY_STATUS.items() if n != before["status"]]
        raw = self.rng.choice(targets)
        self.reply.set_status(s, c, raw)
        event = status_event(before["status"], REPLY_STATUS[raw])
        return self._changed(enrollment_id, f"status:{raw}", before, {event})

    def _unify_change(self, enrollment_id: str, before: State) -> Change | None:
        self.unify_clock.advance(1)
        roll = self.rng.random()
        update = self.unify.update
        if before["status"] == "removed" or roll < 0.08:
            self.unify.touch(enrollment_id)  # updated_at moves, nothing watched changes
            return self._changed(enrollment_id, "touch", before, set())
        flags = [
            ("is_replied", "replied"),
            ("is_bounced", "bounced"),
            ("is_opted_out", "opted_out"),
        ]
        open_flags = [(f, n) for f, n in flags if not before[n]]
        if roll < 0.4 and open_flags:
            flag, name = self.rng.choice(open_flags)
            update(enrollment_id, **{flag: True})
            return self._changed(enrollment_id, name, before, {f"enrollment.{name}"})
        if roll < 0.5:
            update(enrollment_id, is_canceled=True)
            return self._changed(enrollment_id, "cancel", before, {"enrollment.removed"})
        if before["status"] == "active":
            if roll < 0.6 and not before["replied"]:
                update(enrollment_id, is_replied=True, status="FINISHED")
                kinds = {"enrollment.replied", "enrollment.finished"}
                return self._changed(enrollment_id, "reply+finish", before, kinds)
            if roll < 0.75:
                update(enrollment_id, status="FINISHED")
                return self._changed(enrollment_id, "finish", before, {"enrollment.finished"})
            update(enrollment_id, is_paused=True)
            return self._changed(enrollment_id, "pause", before, {"enrollment.paused"})
        if before["status"] == "paused":
            update(enrollment_id, is_paused=False)
            return self._changed(enrollment_id, "resume", before, {"enrollment.resumed"})
        self.unify.touch(enrollment_id)
        return self._changed(enrollment_id, "touch", before, set())

    def observe(self) -> None:
        """Changes whose events reached the receiver are seen: their enrollment may change again."""
        accepted = self.receiver.accepted
        with self.lock:
            for delivery in accepted[self._seen :]:
                data = json.loads(delivery.body)["data"]
                change = self.pending.get(data["enrollment_id"])
                if change and (data["previous"], data["current"]) == (
                    change.previous,
                    change.current,
                ):
                    del self.pending[data["enrollment_id"]]
            self._seen = len(accepted)

    # -- the verdict ---------------------------------------------------------------------
    def check(self) -> Report:
        return check(self.receiver.accepted, self.changes)


Group = tuple[State | None, State | None, list[str], list[str]]  # previous, current, types, ids


def _groups(events: list[dict[str, Any]]) -> Iterator[Group]:
    """Distinct events of one enrollment, in detection order, cut into changes: a new change
    starts where (previous, current) differ or a type comes again."""
    group: list[dict[str, Any]] = []

    def done() -> Group:
        head = group[0]["data"]
        return (
            head["previous"],
            head["current"],
            [e["type"] for e in group],
            [e["data"]["id"] for e in group],
        )

    for event in events:
        data = event["data"]
        if group:
            head = group[0]["data"]
            same = (head["previous"], head["current"]) == (data["previous"], data["current"])
            if not same or event["type"] in {e["type"] for e in group}:
                yield done()
                group = []
        group.append(event)
    if group:
        yield done()


def check(accepted: list[Delivery], changes: list[Change]) -> Report:
    """Every change delivered at least once, one id per (change, type), nothing else."""
    report = Report(deliveries=len(accepted), changes=len(changes))
    by_id: dict[str, dict[str, Any]] = {}
    for delivery in accepted:
        # Signatures are checked on arrival (a long soak outlives the 5 min timestamp window).
        if delivery.verified is not True:
            report.violations.append(f"a delivery failed signature verification: {delivery}")
        doc = json.loads(delivery.body)
        event_id = doc["data"]["id"]
        if delivery.webhook_id != event_id:
            report.violations.append(f"webhook-id {delivery.webhook_id} != data.id {event_id}")
        if event_id in by_id and by_id[event_id] != doc:
            report.violations.append(f"{event_id} delivered with two different bodies")
        by_id[event_id] = doc
    report.distinct_events = len(by_id)
    report.redelivered = len(accepted) - len(by_id)
    per_enrollment: dict[str, list[dict[str, Any]]] = {}
    for doc in by_id.values():
        per_enrollment.setdefault(doc["data"]["enrollment_id"], []).append(doc)
        report.by_type[doc["type"]] += 1
    expected: dict[str, list[Change]] = {}
    for change in changes:
        expected.setdefault(change.enrollment_id, []).append(change)
    report.enrollments = len(set(per_enrollment) | set(expected))
    for enrollment_id in sorted(set(per_enrollment) | set(expected)):
        events = sorted(
            per_enrollment.get(enrollment_id, []),
            key=lambda d: (d["data"]["detected_at"], d["type"]),
        )
        got = list(_groups(events))
        want = [(c.previous, c.current, sorted(c.types)) for c in expected.get(enrollment_id, [])]
        if [(p, c, sorted(t)) for p, c, t, _ in got] != want:
            kinds = [c.kind for c in expected.get(enrollment_id, [])]
            report.violations.append(
                f"{enrollment_id}: changes {kinds} should give {[w[2] for w in want]}; "
                f"delivered {[list(zip(t, i, strict=True)) for _, _, t, i in got]}"
            )
    return report
