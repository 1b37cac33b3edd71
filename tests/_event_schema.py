"""Every event the suite produces is checked against `seqwatch schema` (SPEC §4).

In-process events are checked where they are serialized for the outbox (Event.to_json,
HealthEvent.to_json); events from `seqwatch` subprocesses where a test's webhook receiver takes
them; the `check --send-test` document where it is built. tests/conftest.py installs this for
every test and fails the test at teardown if any document did not validate.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from notifiers.base import OutboundEvent
from worker.app import commands
from worker.demo.fakes.receiver import WebhookReceiver
from worker.events import Event
from worker.ops.health import HealthEvent
from worker.schema import event_schema

_OURS = ("enrollment.", "source.", "seqwatch.")


@cache
def validator() -> Draft202012Validator:
    schema = event_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def problems_of(document: Any) -> list[str]:
    error = best_match(validator().iter_errors(document))  # descends into the oneOf branch
    if error is None:
        return []
    return [f"{'/'.join(map(str, error.absolute_path)) or '(document)'}: {error.message}"]


def install(monkeypatch: pytest.MonkeyPatch, problems: list[str]) -> None:
    def check(document: Any, where: str) -> None:
        found = problems_of(document)
        if found:
            problems.append(f"{where}: {found[0]} in {orjson.dumps(document).decode()[:400]}")

    def serialized(cls: type[Event] | type[HealthEvent]) -> None:
        original: Callable[[Any], bytes] = cls.to_json

        def to_json(self: Any) -> bytes:
            body = original(self)
            check(orjson.loads(body), cls.__name__)
            return body

        monkeypatch.setattr(cls, "to_json", to_json)

    serialized(Event)
    serialized(HealthEvent)

    original_check_event = commands.check_event

    def check_event(destination: str, **kwargs: Any) -> OutboundEvent:
        event = original_check_event(destination, **kwargs)
        check(orjson.loads(event.body), "seqwatch.test")
        return event

    monkeypatch.setattr(commands, "check_event", check_event)

    original_handle = WebhookReceiver.handle

    def handle(self: WebhookReceiver, request: Any) -> Any:
        # What seqwatch sent (its User-Agent), not what a test posted by hand.
        sender = dict(request.headers.items()).get("user-agent", "")
        if not self._slack and sender.startswith("seqwatch/"):
            try:
                document = orjson.loads(request.body)
            except orjson.JSONDecodeError:
                document = None
            kind = document.get("type") if isinstance(document, dict) else None
            if isinstance(kind, str) and kind.startswith(_OURS):
                check(document, "webhook delivery")
        return original_handle(self, request)

    monkeypatch.setattr(WebhookReceiver, "handle", handle)
