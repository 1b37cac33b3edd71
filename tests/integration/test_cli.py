"""End to end: the real `seqwatch` command against fake Reply.io/Unify APIs and a signed receiver.

Every command runs as a subprocess on a TOML config in tmp_path whose Redis is the suite's
private server; `run` fails any test whose output shows a secret or a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from tests.integration._cli_helpers import (
    BAD_HOOK_SECRET,
    ENV_NAMES,
    SLACK_PATH,
    WRONG_KEY,
    Fakes,
    Result,
    Seen,
    Setup,
    make_setup,
    run,
    stderr_lines,
)
from worker.demo.fakes.faults import FaultKind
from worker.demo.fakes.replyio import ContactStatus
from worker.store import keys

STEP_ADVANCED, PAUSED, RESUMED = (
    "enrollment.step_advanced", "enrollment.paused", "enrollment.resumed",
)  # fmt: skip
REPLIED, OPTED_OUT, FINISHED = "enrollment.replied", "enrollment.opted_out", "enrollment.finished"
ENROLLED, REMOVED = "enrollment.enrolled", "enrollment.removed"


@pytest.fixture
def setup(tmp_path: Path, fakes: Fakes, redis_url: str, sync_redis: Redis) -> Setup:
    return make_setup(tmp_path, fakes, redis_url=redis_url)


def ok(result: Result) -> Result:
    assert result.code == 0, str(result)
    return result


def status_json(setup: Setup) -> dict[str, dict[str, Any]]:
    """The --json document by name; its exit status says whether anything is failing."""
    result = run(setup, "status", "--json")
    doc = json.loads(result.stdout)
    assert result.code == (1 if doc["failing"] else 0), str(result)
    return {
        "sources": {s["name"]: s for s in doc["sources"]},
        "destinations": {d["name"]: d for d in doc["destinations"]},
    }


def make_due_now(redis: Redis, *, source: str, destination: str) -> int:
    """Let the backoff pass: every pending delivery of (source, destination) is due now."""
    key = keys.due(source, destination)
    members: list[str] = redis.zrange(key, 0, -1)  # type: ignore[assignment]  # sync client
    for member in members:
        redis.zadd(key, {member: 0}, xx=True)
    return len(members)


def baseline(setup: Setup, fakes: Fakes) -> None:
    result = ok(run(setup, "poll"))
    assert "reply: baseline (silent)" in result.stdout
    assert "unify: baseline (silent)" in result.stdout
    assert fakes.hook.deliveries == []
    assert fakes.slack.deliveries == []


def reply_state(raw: str, sequence: int, step: int) -> dict[str, Any]:
    """A Reply.io v3 state as the fake serves it (step ids are sequence * 100 + step)."""
    status = {"outOfOffice": "paused"}.get(raw, raw)
    return state(status, raw, step, replied=False, bounced=False, opted_out=False) | {
        "step_id": str(sequence * 100 + step)
    }


def state(status: str, raw: str, step: int | None, **flags: bool | None) -> dict[str, Any]:
    return {
        "status": status, "raw_status": raw, "step": step, "step_id": None,
        "replied": flags.get("replied"), "bounced": flags.get("bounced"),
        "opted_out": flags.get("opted_out"),
    }  # fmt: skip


# -- 1. exit codes -------------------------------------------------------------------------


def _edit(old: str, new: str) -> Callable[[Setup], Setup]:
    def apply(setup: Setup) -> Setup:
        text = setup.config.read_text()
        assert old in text
        return setup.with_text(text.replace(old, new, 1))

    return apply


CONFIG_ERRORS: dict[str, tuple[Callable[[Setup], Setup], tuple[str, ...]]] = {
    "unknown key": (
        _edit("requests_per_minute = 60000", "requests_per_minit = 60000"),
        ("sources[0].requests_per_minit", "unknown key"),
    ),
    "missing env var": (
        lambda s: s.with_env(**{ENV_NAMES["unify"]: None}),
        ("sources[1].api_key", ENV_NAMES["unify"], "not set"),
    ),
    "unknown provider": (
        _edit('provider = "unify"', 'provider = "outreach"'),
        ("sources[1].provider", "'outreach'"),
    ),
    "duplicate name": (
        _edit('name = "unify"', 'name = "reply"'),
        ("sources[1].name", "duplicate"),
    ),
    "invalid value": (
        _edit("poll_interval = 300", "poll_interval = 0"),
        ("sources[0].poll_interval",),
    ),
    "invalid secret value": (
        lambda s: s.with_env(**{ENV_NAMES["hook"]: BAD_HOOK_SECRET}),
        ("destinations[0].secret", "whsec_"),
    ),
    "invalid secret url": (
        lambda s: s.with_env(**{ENV_NAMES["slack"]: "ftp://hooks.example" + SLACK_PATH}),
        ("destinations[1].url",),
    ),
    "missing file": (
        lambda s: s.with_config(s.cwd / "missing.toml"),
        ("config file not found",),
    ),
}


@pytest.mark.parametrize("case", list(CONFIG_ERRORS))
def test_bad_config_exits_2_with_one_line_naming_the_key(
    setup: Setup, fakes: Fakes, case: str
) -> None:
    change, expected = CONFIG_ERRORS[case]
    result = run(change(setup), "poll")  # run() also rejects tracebacks and leaked secrets
    assert result.code == 2, str(result)
    lines = stderr_lines(result)
    assert len(lines) == 1, str(result)
    assert lines[0].startswith("seqwatch: config error: ")
    for fragment in expected:
        assert fragment in lines[0], (fragment, lines[0])
    assert result.stdout == ""
    assert fakes.reply_server.requests == []
    assert fakes.unify_server.requests == []


def test_unknown_source_exits_2_before_polling_anything(setup: Setup, fakes: Fakes) -> None:
    result = run(setup, "poll", "--source", "reply", "--source", "nope")
    assert result.code == 2, str(result)
    lines = stderr_lines(result)
    assert len(lines) == 1
    assert "unknown source 'nope'" in lines[0]
    assert fakes.reply_server.requests == []
    reset = run(setup, "reset", "--source", "nope")
    assert reset.code == 2
    assert len(stderr_lines(reset)) == 1


@pytest.mark.parametrize(
    "args",
    [("poll", "--bogus"), ("frobnicate",), ("status", "--json", "extra"), ("reset",)],
    ids=["unknown flag", "unknown command", "extra argument", "missing required"],
)
def test_usage_errors_exit_2(setup: Setup, args: tuple[str, ...]) -> None:
    result = run(setup, *args)
    assert result.code == 2, str(result)
    assert "usage: seqwatch" in result.stderr


def test_usage_errors_without_command_or_ids_exit_2(setup: Setup) -> None:
    assert run(setup, config=False).code == 2
    result = run(setup, "dead-letters", "replay")
    assert result.code == 2, str(result)
    assert len(stderr_lines(result)) == 1
    assert "--all" in result.stderr


def test_provider_500_fails_the_poll_then_a_good_poll_emits_exactly_the_changes(
    setup: Setup, fakes: Fakes
) -> None:
    baseline(setup, fakes)
    fakes.reply.advance_step(100, 1)
    fakes.reply.set_status(200, 4, ContactStatus.FINISHED)
    fakes.reply.remove_contact(200, 5)
    # Every attempt at sequence 200's contacts fails (the client retries 5 times).
    fakes.reply_faults.add(FaultKind.STATUS, status=500, times=5, path_contains="/200/contacts")

    sent_before = len(fakes.reply_server.requests)
    failed = run(setup, "poll", "--source", "reply")
    assert failed.code == 1, str(failed)
    assert fakes.reply_faults.pending() == 0
    line = next(x for x in failed.output.splitlines() if "FAILED" in x)
    assert line.startswith("reply: FAILED:")
    assert "HTTP 500" in line
    assert "sequence 200" in line
    status = status_json(setup)["sources"]["reply"]
    assert status["last_outcome"] == "failed"
    assert "HTTP 500" in status["last_error"]
    # A failed poll's requests count too (retries included): they spent the quota.
    assert status["last_poll_requests"] == len(fakes.reply_server.requests) - sent_before

    ok(run(setup, "poll", "--source", "reply"))
    ok(run(setup, "poll", "--source", "reply"))  # Max is absent from a second full listing
    seen = Seen.of(fakes.hook)
    assert seen.kinds() == sorted(
        [(STEP_ADVANCED, "100:1"), (FINISHED, "200:4"), (REMOVED, "200:5")]
    )
    ok(run(setup, "poll", "--source", "reply"))
    assert len(fakes.hook.accepted) == 3
    assert status_json(setup)["sources"]["reply"]["last_outcome"] == "ok"


def test_status_exits_1_while_a_source_is_failing_and_0_once_it_recovers(
    setup: Setup, fakes: Fakes
) -> None:
    baseline(setup, fakes)
    # Three polls fail (the client tries each request 5 times): the threshold is 3.
    fakes.reply_faults.add(FaultKind.STATUS, status=500, retry_after=0, times=15)
    for _ in range(3):
        assert run(setup, "poll", "--source", "reply").code == 1
    failing = run(setup, "status")
    assert failing.code == 1, str(failing)
    assert "  reply: FAILING (3 failed polls in a row); last poll" in failing.stdout
    assert "  unify: ok; last poll" in failing.stdout
    assert status_json(setup)["sources"]["reply"]["failing"] is True
    ok(run(setup, "poll", "--source", "reply"))
    assert ok(run(setup, "status")).code == 0
    assert status_json(setup)["sources"]["reply"]["failing"] is False


def test_provider_401_exits_1_with_authentication_failed(setup: Setup, fakes: Fakes) -> None:
    wrong = setup.with_env(**{ENV_NAMES["reply"]: WRONG_KEY})
    result = run(wrong, "poll")
    assert result.code == 1, str(result)
    assert "reply: FAILED:" in result.stdout
    assert "authentication failed" in result.stdout
    assert "unify: baseline (silent)" in result.stdout  # the other source still polls
    assert fakes.hook.deliveries == []
    text = ok(run(wrong, "status")).stdout
    assert "authentication failed" in text


# -- 2. polling both providers -----------------------------------------------------------


def test_replyio_poll_scenario(setup: Setup, fakes: Fakes) -> None:
    baseline(setup, fakes)
    reply = fakes.reply
    reply.advance_step(100, 1)
    reply.set_status(100, 2, ContactStatus.OUT_OF_OFFICE)
    reply.opt_out(100, 3)
    reply.set_status(200, 4, ContactStatus.FINISHED)
    reply.remove_contact(200, 5)
    reply.add_contact(200, 6, email="priya@shah.example", first="Priya", last="Shah")

    result = ok(run(setup, "poll", "--source", "reply"))
    assert "reply: poll:" in result.stdout
    assert "5 events" in result.stdout
    seen = Seen.of(fakes.hook)
    assert seen.kinds() == sorted([
        (STEP_ADVANCED, "100:1"), (PAUSED, "100:2"), (OPTED_OUT, "100:3"),
        (FINISHED, "200:4"), (ENROLLED, "200:6"),
    ])  # fmt: skip   # no removal yet: Max is missing from only one listing
    step = seen.one(STEP_ADVANCED, "100:1")
    assert step["source"] == "reply"
    assert step["provider"] == "replyio"
    assert step["sequence"] == {"id": "100", "name": "Q4 outbound"}
    assert step["contact"] == {
        "id": "1", "email": "john.doe@company.com", "name": "John Doe",
        "company": "Tech Solutions Inc",
    }  # fmt: skip
    # Reply.io v3 (detected first): lower-case status, step ids, reply and bounce flags.
    assert step["previous"] == reply_state("active", 100, 1)
    assert step["current"] == reply_state("active", 100, 2)
    paused = seen.one(PAUSED, "100:2")
    # The fake marks the auto-reply isReplied, yet it is no reply: no replied event above.
    assert paused["current"] == reply_state("outOfOffice", 100, 1) | {"reason": "AutoReplied"}
    assert seen.one(OPTED_OUT, "100:3")["current"]["opted_out"] is True
    finished = seen.one(FINISHED, "200:4")
    assert finished["current"] == reply_state("finished", 200, 1)
    assert finished["sequence"] == {"id": "200", "name": "Webinar follow-up"}
    enrolled = seen.one(ENROLLED, "200:6")
    assert enrolled["previous"] is None
    assert enrolled["current"] == reply_state("active", 200, 1)
    assert enrolled["contact"]["company"] is None
    assert fakes.slack.accepted, "the Slack destination got nothing"

    reply.set_status(100, 2, ContactStatus.ACTIVE)
    ok(run(setup, "poll", "--source", "reply"))
    seen = Seen.of(fakes.hook)
    assert len(seen.docs) == 7
    removed = seen.one(REMOVED, "200:5")
    assert removed["current"] is None
    assert removed["previous"] == reply_state("active", 200, 1)
    assert removed["contact"]["id"] == "5"
    assert seen.one(RESUMED, "100:2")["current"]["status"] == "active"

    again = ok(run(setup, "poll", "--source", "reply"))
    assert "0 events" in again.stdout
    assert len(fakes.hook.accepted) == 7
    reply_status = status_json(setup)["sources"]["reply"]
    assert reply_status["tracked"] == 5
    assert reply_status["events_total"] == 7


def _enrollment_queries(fakes: Fakes) -> list[dict[str, list[str]]]:
    return [
        dict(r.query) for r in fakes.unify_server.requests if r.path == "/sequences/v1/enrollments"
    ]


def test_unify_poll_scenario(setup: Setup, fakes: Fakes) -> None:
    baseline(setup, fakes)
    newest = fakes.newest_unify_update()
    fakes.unify_server.clear_requests()
    fakes.unify_update("Maya Lopez", is_replied=True)
    fakes.unify_update("Omar Haddad", is_paused=True)
    fakes.unify_update("Kim Park", is_opted_out=True)
    fakes.unify_update("Lee Chen", status="FINISHED")
    fakes.unify_update("Max Brown", is_canceled=True)
    priya = fakes.unify_enroll("Priya Shah", "priya@shah.example")

    ok(run(setup, "poll", "--source", "unify"))
    queries = _enrollment_queries(fakes)
    assert queries, "no enrollment listing was requested"
    assert all(q.get("updated_after") == [newest] for q in queries), queries
    ids = fakes.unify_ids
    seen = Seen.of(fakes.hook)
    assert seen.kinds() == sorted([
        (REPLIED, ids["Maya Lopez"]), (PAUSED, ids["Omar Haddad"]),
        (OPTED_OUT, ids["Kim Park"]), (FINISHED, ids["Lee Chen"]),
        (REMOVED, ids["Max Brown"]), (ENROLLED, priya),
    ])  # fmt: skip
    replied = seen.one(REPLIED, ids["Maya Lopez"])
    assert replied["provider"] == "unify"
    assert replied["source"] == "unify"
    assert replied["sequence"] == {"id": ids["sequence"], "name": "Enterprise expansion"}
    assert replied["contact"]["email"] == "maya@lopez.example"
    assert replied["contact"]["name"] == "Maya Lopez"
    assert replied["contact"]["company"] is None
    flags = {"replied": False, "bounced": False, "opted_out": False}
    assert replied["previous"] == state("active", "IN_PROGRESS", None, **flags)
    assert replied["current"] == state("active", "IN_PROGRESS", None, **flags | {"replied": True})
    assert seen.one(PAUSED, ids["Omar Haddad"])["current"]["status"] == "paused"
    removed = seen.one(REMOVED, ids["Max Brown"])  # flagged by Unify: current is known
    assert removed["current"]["status"] == "removed"
    assert seen.one(FINISHED, ids["Lee Chen"])["current"]["raw_status"] == "FINISHED"
    assert seen.one(ENROLLED, priya)["previous"] is None

    newest = fakes.newest_unify_update()
    fakes.unify_server.clear_requests()
    fakes.unify_update("Omar Haddad", is_paused=False)
    ok(run(setup, "poll", "--source", "unify"))
    assert all(q.get("updated_after") == [newest] for q in _enrollment_queries(fakes))
    seen = Seen.of(fakes.hook)
    assert len(seen.docs) == 7
    assert seen.one(RESUMED, ids["Omar Haddad"])["previous"]["status"] == "paused"

    fakes.unify.touch(ids["Maya Lopez"])  # newer updated_at, same state: nothing to say
    ok(run(setup, "poll", "--source", "unify"))
    ok(run(setup, "poll", "--source", "unify"))
    assert len(fakes.hook.accepted) == 7


# -- 3. destination down, dead letters, status --------------------------------------------


def test_destination_503_keeps_the_event_pending_then_deliver_resends_the_same_id(
    setup: Setup, fakes: Fakes, sync_redis: Redis
) -> None:
    baseline(setup, fakes)
    fakes.reply.advance_step(100, 1)
    fakes.hook.fail_next(1, status=503)
    polled = run(setup, "poll", "--source", "reply")
    assert "hook: 0 delivered, 1 will be retried" in polled.stdout, str(polled)
    [failed] = fakes.hook.deliveries
    assert failed.status == 503
    status = status_json(setup)
    assert status["destinations"]["hook"]["pending"] == 1
    assert status["destinations"]["hook"]["retrying"] == 1
    assert status["destinations"]["hook"]["failing"] is False  # one failed attempt is not yet
    assert status["destinations"]["hook"]["dead"] == 0
    assert status["destinations"]["slack"]["pending"] == 0
    text = ok(run(setup, "status")).stdout
    assert "hook: ok; 1 pending (1 retrying), 0 dead-lettered" in text

    ok(run(setup, "deliver"))  # backing off: not due yet
    assert len(fakes.hook.deliveries) == 1
    assert make_due_now(sync_redis, source="reply", destination="hook") == 1
    delivered = ok(run(setup, "deliver"))
    assert "hook: 1 delivered" in delivered.stdout
    [resent] = fakes.hook.accepted
    assert resent.webhook_id == failed.webhook_id
    assert resent.body == failed.body
    Seen.of(fakes.hook)  # signed and well-formed
    hook = status_json(setup)["destinations"]["hook"]
    assert (hook["pending"], hook["retrying"], hook["dead"], hook["failing"]) == (0, 0, 0, False)
    assert "nothing failed" in ok(run(setup, "deliver")).stdout
    assert len(fakes.hook.deliveries) == 2


def test_destination_410_dead_letters_then_replay_and_drop(setup: Setup, fakes: Fakes) -> None:
    baseline(setup, fakes)
    fakes.reply.advance_step(100, 1)
    fakes.hook.fail_next(1, status=410)
    polled = run(setup, "poll", "--source", "reply")
    assert "hook: 0 delivered, 1 dead-lettered" in polled.stdout, str(polled)
    [gone] = fakes.hook.deliveries
    dead_id = gone.webhook_id
    assert dead_id is not None
    listed = ok(run(setup, "dead-letters", "list"))
    assert dead_id in listed.stdout
    assert "hook  reply  enrollment.step_advanced" in listed.stdout
    assert "after 1 attempt:" in listed.stdout  # permanent: no retries first
    assert "\n1 dead letter\n" in listed.stdout
    for_slack = ok(run(setup, "dead-letters", "list", "--destination", "slack"))
    assert "0 dead letters" in for_slack.stdout
    hook = status_json(setup)["destinations"]["hook"]
    assert (hook["pending"], hook["dead"], hook["failing"]) == (0, 1, True)
    failing = run(setup, "status")
    assert failing.code == 1, str(failing)  # a probe: a dead letter since the last success
    assert "hook: FAILING; 0 pending, 1 dead-lettered" in failing.stdout
    assert "last error: destination 'hook': HTTP 410" in failing.stdout
    assert hook["last_outcome"] == "failed"

    unknown = run(setup, "dead-letters", "replay", "evt_" + "0" * 32)
    assert unknown.code == 1, str(unknown)
    assert stderr_lines(unknown) == [f"seqwatch: no dead letter 'evt_{'0' * 32}' matches"]
    nowhere = run(setup, "dead-letters", "list", "--destination", "nope")
    assert nowhere.code == 2, str(nowhere)
    assert stderr_lines(nowhere) == [
        "seqwatch: unknown destination 'nope' (expected one of: hook, slack)"
    ]
    nothing = run(setup, "dead-letters", "replay")
    assert nothing.code == 2, str(nothing)
    assert stderr_lines(nothing) == ["seqwatch: dead-letters replay: name event ids or pass --all"]

    replayed = ok(run(setup, "dead-letters", "replay", "--all"))
    assert "1 dead letter queued for redelivery" in replayed.stdout
    assert fakes.hook.received_ids() == [dead_id]
    assert fakes.hook.accepted[0].body == gone.body
    assert "0 dead letters" in ok(run(setup, "dead-letters", "list")).stdout

    fakes.reply.advance_step(100, 1)
    fakes.hook.fail_next(1, status=410)
    run(setup, "poll", "--source", "reply")
    dropped_id = fakes.hook.deliveries[-1].webhook_id
    assert dropped_id is not None
    assert dropped_id != dead_id
    assert status_json(setup)["destinations"]["hook"]["dead"] == 1
    assert status_json(setup)["destinations"]["hook"]["failing"] is True
    dropped = ok(run(setup, "dead-letters", "drop", "--all"))
    assert "1 dead letter dropped" in dropped.stdout
    assert "0 dead letters" in ok(run(setup, "dead-letters", "list")).stdout
    hook = status_json(setup)["destinations"]["hook"]
    # The cause is gone: no longer failing, though the last attempt failed.
    assert (hook["pending"], hook["retrying"], hook["dead"], hook["failing"]) == (0, 0, 0, False)
    assert ok(run(setup, "status")).code == 0
    ok(run(setup, "deliver"))
    assert fakes.hook.received_ids() == [dead_id]
    Seen.of(fakes.hook)


def test_status_reports_sources_and_destinations(setup: Setup, fakes: Fakes) -> None:
    before = status_json(setup)
    assert before["sources"]["reply"]["last_poll_at"] is None
    assert "reply: never polled; last poll never" in ok(run(setup, "status")).stdout
    baseline(setup, fakes)
    fakes.reply.advance_step(100, 1)
    fakes.unify_update("Maya Lopez", is_bounced=True)
    sent_before = len(fakes.reply_server.requests)
    polled = ok(run(setup, "poll"))
    status = status_json(setup)
    # What the last poll cost, counted by the fake that served it; the detected API version.
    sent = len(fakes.reply_server.requests) - sent_before
    assert status["sources"]["reply"]["last_poll_requests"] == sent
    assert status["sources"]["reply"]["api_version"] == "v3"
    assert status["sources"]["unify"]["api_version"] is None
    logged = [json.loads(line) for line in stderr_lines(polled) if line.startswith("{")]
    [canonical] = [e for e in logged if e.get("event") == "poll" and e.get("source") == "reply"]
    assert canonical["requests"] == sent
    assert status["sources"]["reply"]["tracked"] == 5
    assert status["sources"]["reply"]["events_total"] == 1
    assert status["sources"]["unify"]["tracked"] == 5
    assert status["sources"]["unify"]["events_total"] == 1
    assert status["sources"]["unify"]["last_outcome"] == "ok"
    for name in ("hook", "slack"):
        counts = status["destinations"][name]
        assert (counts["pending"], counts["retrying"], counts["dead"]) == (0, 0, 0)
        assert counts["failing"] is False
        assert counts["last_success_at"].endswith("Z")
    text = ok(run(setup, "status")).stdout
    assert "reply: ok; last poll 20" in text
    assert "5 enrollments tracked, 1 event emitted" in text
    assert "hook: ok; 0 pending, 0 dead-lettered, last success" in text
    assert "workers: 0 running (no `seqwatch run`)" in text
    assert f"API v3, last poll sent {sent} provider requests" in text
    assert Seen.of(fakes.hook).kinds() == sorted(
        [(STEP_ADVANCED, "100:1"), ("enrollment.bounced", fakes.unify_ids["Maya Lopez"])]
    )


# -- 4. reset and check --------------------------------------------------------------------


def test_reset_makes_the_next_poll_a_silent_baseline(setup: Setup, fakes: Fakes) -> None:
    baseline(setup, fakes)
    reset = ok(run(setup, "reset", "--source", "reply"))
    assert "next poll records a silent baseline" in reset.stdout
    fakes.reply.advance_step(100, 1)
    fakes.reply.add_contact(100, 7, email="new@person.example", first="New", last="Person")
    fakes.unify_update("Kim Park", is_opted_out=True)
    result = ok(run(setup, "poll"))
    assert "reply: baseline (silent)" in result.stdout
    assert "unify: poll:" in result.stdout  # only the named source was forgotten
    assert Seen.of(fakes.hook).kinds() == [(OPTED_OUT, fakes.unify_ids["Kim Park"])]
    assert status_json(setup)["sources"]["reply"]["tracked"] == 6

    fakes.reply.advance_step(100, 1)
    ok(run(setup, "poll", "--source", "reply"))
    seen = Seen.of(fakes.hook)
    assert seen.kinds() == sorted(
        [(OPTED_OUT, fakes.unify_ids["Kim Park"]), (STEP_ADVANCED, "100:1")]
    )
    assert seen.one(STEP_ADVANCED, "100:1")["previous"]["step"] == 2


def test_check_reports_each_source_and_fails_on_a_wrong_key(setup: Setup, fakes: Fakes) -> None:
    good = ok(run(setup, "check"))
    for line in ("redis: ok", "source reply: ok", "source unify: ok"):
        assert line in good.stdout
    assert "destination hook: configured" in good.stdout
    assert fakes.hook.deliveries == []

    bad = run(setup.with_env(**{ENV_NAMES["unify"]: WRONG_KEY}), "check")
    assert bad.code == 1, str(bad)
    assert "source reply: ok" in bad.stdout
    failed = next(x for x in bad.stdout.splitlines() if x.startswith("source unify:"))
    assert "FAILED" in failed
    assert "authentication failed" in failed


def test_check_send_test_delivers_a_signed_test_event(setup: Setup, fakes: Fakes) -> None:
    result = ok(run(setup, "check", "--send-test"))
    assert "destination hook: test event delivered" in result.stdout
    # slack selects enrollment.* only: the test is sent anyway, and the output says so.
    assert (
        "destination slack: test event delivered "
        "(sent although its events filter does not select seqwatch.test)"
    ) in result.stdout
    [delivery] = fakes.hook.accepted
    assert delivery.verified is True
    doc = json.loads(delivery.body)
    assert doc["type"] == "seqwatch.test"  # never an enrollment.* type a consumer acts on
    assert doc["data"]["destination"] == "hook"
    assert delivery.webhook_id == doc["data"]["id"]
    assert len(fakes.slack.accepted) == 1
    assert "Test event" in json.loads(fakes.slack.accepted[0].body)["blocks"][0]["text"]["text"]
    assert fakes.slack.accepted[0].path == SLACK_PATH
    assert fakes.reply_server.requests, "check did not try the Reply.io credentials"


# -- 5. secrets ----------------------------------------------------------------------------


def test_secrets_stay_out_of_output_even_in_failures_and_debug_logs(
    setup: Setup, fakes: Fakes
) -> None:
    """`run` checks every output for each secret; this drives the paths most likely to leak."""
    debug = ("--log-level", "DEBUG")
    ok(run(setup, *debug, "poll"))
    fakes.reply.advance_step(100, 1)
    fakes.slack.fail_next(1, status=403)
    fakes.hook.fail_next(1, status=401)
    run(setup, *debug, "poll")
    listed = ok(run(setup, *debug, "dead-letters", "list"))
    assert "2 dead letters" in listed.stdout
    assert run(setup, *debug, "status").code == 1  # dead letters: failing destinations
    assert run(setup, *debug, "status", "--json").code == 1
    fakes.unify_faults.add(FaultKind.STATUS, status=503, retry_after=0, times=5)
    assert run(setup, *debug, "poll", "--source", "unify").code == 1
    wrong = setup.with_env(**{ENV_NAMES["reply"]: WRONG_KEY})
    assert run(wrong, *debug, "check", "--send-test").code == 1
    assert run(wrong, *debug, "poll").code == 1
    assert "authentication failed" in run(wrong, *debug, "status").stdout
