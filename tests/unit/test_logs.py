"""worker.app.logs: secrets never reach a log line, and tracebacks carry no local variables."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import orjson
import pytest
import structlog

from worker.app.logs import SecretRedactor, configure
from worker.redaction import _SHAPES, REDACTED, Scrubber

API_KEY = "rk_live_5f2e9a77c1d04b1f"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SLACK_URL = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX"
LOCAL_SECRET = "sk-LOCAL-SECRET"
SECRETS = (API_KEY, WEBHOOK_SECRET, SLACK_URL)


# ---------------------------------------------------------------- SecretRedactor


def test_scrubs_secrets_inside_strings() -> None:
    redactor = SecretRedactor(SECRETS)
    got = redactor.scrub(f"GET failed with key={API_KEY}; posting to {SLACK_URL} then {API_KEY}")
    assert got == f"GET failed with key={REDACTED}; posting to {REDACTED} then {REDACTED}"


def test_longer_secret_wins_over_a_secret_it_contains() -> None:
    """A secret that contains another is replaced whole, leaving no tail behind."""
    short = "abcd1234"
    long = "abcd1234-and-more-secret"
    got = SecretRedactor([short, long]).scrub(f"x {long} y {short}")
    assert got == f"x {REDACTED} y {REDACTED}"


def test_scrubs_nested_dicts_and_lists() -> None:
    redactor = SecretRedactor(SECRETS)
    value: dict[str, Any] = {
        "request": {"headers": [f"X-API-Key: {API_KEY}", "Accept: */*"], "attempt": 2},
        "targets": [{"url": SLACK_URL}, (WEBHOOK_SECRET, 3)],
        "ok": None,
    }
    got = redactor.scrub(value)
    assert got == {
        "request": {"headers": [f"X-API-Key: {REDACTED}", "Accept: */*"], "attempt": 2},
        "targets": [{"url": REDACTED}, [REDACTED, 3]],
        "ok": None,
    }
    assert value["request"]["headers"][0].endswith(API_KEY)  # the input is not mutated


@pytest.mark.parametrize("key", ["api_key", "secret", "password", "token", "authorization"])
def test_secret_named_keys_are_redacted_whatever_their_value(key: str) -> None:
    redactor = SecretRedactor()  # no known secrets at all
    got = redactor.scrub({"outer": {key: "not-a-configured-secret", "name": "reply-emea"}})
    assert got == {"outer": {key: REDACTED, "name": "reply-emea"}}


def test_processor_redacts_top_level_keys_and_values() -> None:
    redactor = SecretRedactor(SECRETS)
    event: dict[str, Any] = {
        "event": f"failed with {API_KEY}",
        "api_key": "whatever",
        "secret": 123,
        "source": "reply-emea",
        "count": 3,
    }
    got = redactor(None, "error", event)
    assert got == {
        "event": f"failed with {REDACTED}",
        "api_key": REDACTED,
        "secret": REDACTED,
        "source": "reply-emea",
        "count": 3,
    }


def test_non_secret_values_pass_through_unchanged() -> None:
    redactor = SecretRedactor(SECRETS)
    value = {"n": 1, "f": 1.5, "b": True, "s": "plain text", "l": ["a"]}
    assert redactor.scrub(value) == value


class _Echo:
    def __repr__(self) -> str:
        return f"Echo(url={SLACK_URL!r}, key={API_KEY!r})"


def test_values_rendered_as_their_repr_are_scrubbed_as_that_repr() -> None:
    """Neither renderer knows a set, a path or an object: each writes its repr, scrubbed."""
    redactor = SecretRedactor(SECRETS)
    got = redactor.scrub({"keys": {API_KEY}, "echo": _Echo(), "nested": [frozenset({API_KEY})]})
    assert got == {
        "keys": f"{{'{REDACTED}'}}",
        "echo": f"Echo(url='{REDACTED}', key='{REDACTED}')",
        "nested": [f"frozenset({{'{REDACTED}'}})"],
    }
    event = redactor(None, "info", {"event": "x", "echo": _Echo(), "n": 2, "none": None})
    assert event == {
        "event": "x",
        "echo": f"Echo(url='{REDACTED}', key='{REDACTED}')",
        "n": 2,
        "none": None,
    }


# ---------------------------------------------------------------- configure(...)


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """A StringIO log stream; global logging config is put back afterwards."""
    root = logging.getLogger()
    handlers, level, hook = list(root.handlers), root.level, sys.excepthook
    out = io.StringIO()
    yield out
    sys.excepthook = hook
    structlog.reset_defaults()
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def _fail_with_local_secret() -> None:
    api_key = LOCAL_SECRET  # locals that must never be rendered
    copied = f"copy-{api_key}"  # a name the key-based redaction would not catch
    assert copied
    raise RuntimeError(f"upstream rejected key {API_KEY} for {SLACK_URL}")


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_error_with_exception_is_redacted_and_has_no_locals(stream: io.StringIO) -> None:
    configure(secrets=SECRETS, stream=stream, json=True)
    log = structlog.get_logger("seqwatch.test")
    try:
        _fail_with_local_secret()
    except RuntimeError:
        log.error("poll_failed", source="reply-emea", detail=f"key {API_KEY}", exc_info=True)

    text = stream.getvalue()
    for secret in (*SECRETS, LOCAL_SECRET):
        assert secret not in text
    assert "api_key" not in text  # no locals at all, not even the name
    (line,) = _lines(stream)
    assert line["event"] == "poll_failed"
    assert line["level"] == "error"
    assert line["source"] == "reply-emea"
    assert line["detail"] == f"key {REDACTED}"
    assert "timestamp" in line
    (stack,) = line["exception"]
    assert stack["exc_type"] == "RuntimeError"
    assert stack["exc_value"] == f"upstream rejected key {REDACTED} for {REDACTED}"
    assert any(f["name"] == "_fail_with_local_secret" for f in stack["frames"])
    assert all(not f.get("locals") for f in stack["frames"])


def test_json_exception_method_and_secret_kwargs(stream: io.StringIO) -> None:
    configure(secrets=SECRETS, stream=stream, json=True)
    log = structlog.get_logger()
    try:
        _fail_with_local_secret()
    except RuntimeError:
        log.exception("crash", api_key="typed-by-mistake", url=SLACK_URL)
    text = stream.getvalue()
    assert LOCAL_SECRET not in text
    assert SLACK_URL not in text
    assert "typed-by-mistake" not in text
    (line,) = _lines(stream)
    assert line["api_key"] == REDACTED
    assert line["url"] == REDACTED


def test_console_rendering_is_redacted_too(stream: io.StringIO) -> None:
    configure(secrets=SECRETS, stream=stream, json=False)
    log = structlog.get_logger()
    try:
        _fail_with_local_secret()
    except RuntimeError:
        log.error("poll_failed", exc_info=True)
    text = stream.getvalue()
    assert "poll_failed" in text
    assert "RuntimeError" in text
    for secret in (*SECRETS, LOCAL_SECRET):
        assert secret not in text


def test_level_filters_lower_messages(stream: io.StringIO) -> None:
    configure(stream=stream, json=True, level="WARNING")
    log = structlog.get_logger()
    log.info("quiet")
    log.warning("loud")
    assert [line["event"] for line in _lines(stream)] == ["loud"]


def test_stream_not_a_terminal_defaults_to_json(stream: io.StringIO) -> None:
    configure(secrets=SECRETS, stream=stream)
    structlog.get_logger().info("hello", token=API_KEY)
    (line,) = _lines(stream)
    assert line["event"] == "hello"
    assert line["token"] == REDACTED


@pytest.mark.parametrize("logger", ["arq.worker", "asyncio"])
def test_stdlib_logging_goes_through_the_same_processors(stream: io.StringIO, logger: str) -> None:
    configure(secrets=SECRETS, stream=stream, json=True)
    try:
        _fail_with_local_secret()
    except RuntimeError:
        logging.getLogger(logger).exception("job failed posting to %s", SLACK_URL)
    logging.getLogger(logger).info("below warning: dropped")
    text = stream.getvalue()
    for secret in (*SECRETS, LOCAL_SECRET):
        assert secret not in text
    (line,) = _lines(stream)  # JSON, one line
    assert line["event"] == f"job failed posting to {REDACTED}"
    assert (line["level"], line["logger"]) == ("error", logger)
    assert line["exception"][0]["exc_type"] == "RuntimeError"


def test_secret_shapes_are_redacted_even_when_not_configured(stream: io.StringIO) -> None:
    configure(secrets=(), stream=stream, json=True)
    other_slack = "https://hooks.slack.com/services/T999/B999/abcdefABCDEF1234"
    structlog.get_logger().warning("echo", body=f"bad: {other_slack} and whsec_QUJDREVGR0g=")
    (line,) = _lines(stream)
    assert line["body"] == f"bad: {REDACTED} and {REDACTED}"


def test_errors_are_scrubbed_when_made() -> None:
    from worker import redaction
    from worker.errors import DeliveryPermanent, SourceRejected

    redaction.configure([API_KEY, WEBHOOK_SECRET])
    try:
        bare = WEBHOOK_SECRET.removeprefix("whsec_")
        exc = SourceRejected(f"rejected: {API_KEY} {bare} {SLACK_URL}", source="s", where="p1")
        for leaked in (API_KEY, bare, SLACK_URL):
            assert leaked not in str(exc)
        assert API_KEY not in exc.detail
        assert WEBHOOK_SECRET not in str(DeliveryPermanent(f"HTTP 422: {WEBHOOK_SECRET}"))
    finally:
        redaction.configure(())


def test_echoed_forms_of_a_secret_are_redacted_too() -> None:
    scrub = Scrubber([SLACK_URL, API_KEY])
    token = SLACK_URL.rpartition("/")[2]
    text = scrub(f"url={quote(SLACK_URL, safe='')} token={token} key={quote(API_KEY)}")
    assert token not in text
    assert API_KEY not in text
    assert "hooks.slack.com" not in text


def _scrubbed_one_by_one(secrets: list[str], text: str) -> str:
    """What Scrubber does, without its index: every secret searched, longest first."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _SHAPES.sub(REDACTED, text)


def test_many_secrets_are_scrubbed_exactly_as_a_few_are() -> None:
    """With a thousand sources' API keys (the index skips texts that open no secret), every
    text comes out as searching each secret would leave it."""
    keys = [f"rk_{n:04d}_{n * 7919 % 100003:06d}" for n in range(1000)]
    nested = "rk_0007_055433-tail"  # contains a key: replaced whole
    scrub = Scrubber([*keys, nested, SLACK_URL, API_KEY])
    assert len(scrub.secrets) > 1000  # the variants too
    texts = [
        "", "ok", "poll", "rk_", "rk_000", "2026-11-30T14:42:17.123456Z", keys[0], keys[-1],
        f"key={keys[500]}&again={quote(keys[500], safe='')}", f"{keys[1]}{keys[2]}",
        f"x {nested} y {keys[7]}", f"echo {SLACK_URL.rpartition('/')[2]} end",
        f"url={quote(SLACK_URL, safe='')}", f"say {WEBHOOK_SECRET}", "whsec_", keys[3][:-1],
        f"{API_KEY[:-1]}!", f"tail {keys[999]}",
    ]  # fmt: skip
    for _ in range(2):  # the second time, short texts come from what the scrubber remembers
        for text in texts:
            assert scrub(text) == _scrubbed_one_by_one(scrub.secrets, text), text
    for n in range(5000):  # more one-off texts than it remembers
        assert scrub(f"{n} {keys[n % 1000]}") == f"{n} {REDACTED}"
    assert scrub(f"tail {keys[999]}") == f"tail {REDACTED}"
    assert scrub(keys[3][:-1]) == keys[3][:-1]


def test_an_uncaught_exception_is_one_redacted_log_entry(stream: io.StringIO) -> None:
    configure(secrets=SECRETS, stream=stream, json=True)
    try:
        _fail_with_local_secret()
    except RuntimeError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    (line,) = _lines(stream)
    assert (line["event"], line["level"]) == ("uncaught_exception", "critical")
    for secret in (*SECRETS, LOCAL_SECRET):
        assert secret not in stream.getvalue()


@pytest.mark.parametrize("as_json", [True, False])
def test_an_object_logged_as_a_value_does_not_carry_a_secret_out(
    stream: io.StringIO, as_json: bool
) -> None:
    configure(secrets=SECRETS, stream=stream, json=as_json)
    structlog.get_logger("t").info("echoed", echo=_Echo(), keys={API_KEY})
    written = stream.getvalue()
    assert "Echo(url=" in written
    assert API_KEY not in written
    assert SLACK_URL not in written
