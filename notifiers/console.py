"""Console destination for local runs: one line per event, readable or raw JSON."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, TextIO

import orjson

from notifiers.base import OutboundEvent
from notifiers.describe import describe
from worker.errors import DeliveryPermanent, DeliveryRetriable


def _field(document: dict[str, Any], key: str, default: str) -> str:
    value = document.get(key)
    return value if isinstance(value, str) and value.isprintable() else default


class ConsoleNotifier:
    """Writes events to a text stream it does not own (it never closes it)."""

    __slots__ = ("_json_lines", "_name", "_stream")

    def __init__(self, *, name: str, stream: TextIO, json_lines: bool = False) -> None:
        self._name = name
        self._stream = stream
        self._json_lines = json_lines

    def __repr__(self) -> str:
        return f"ConsoleNotifier(name={self._name!r})"

    @property
    def max_batch(self) -> int:
        return 100

    def _format(self, event: OutboundEvent) -> str:
        try:
            document = orjson.loads(event.body)
        except orjson.JSONDecodeError:
            document = None
        if not isinstance(document, dict):
            raise DeliveryPermanent(
                f"destination {self._name!r}: event {event.id!r} is not a JSON object"
            )
        if self._json_lines:
            # Re-encoded so a stored document with newlines still fits on one line.
            return orjson.dumps(document).decode()
        stamp = _field(document, "timestamp", "-")
        event_type = _field(document, "type", "unknown")
        return f"{stamp} {event_type:<26} {describe(document)}"

    async def send(self, events: Sequence[OutboundEvent]) -> None:
        text = "".join(self._format(e) + "\n" for e in events)
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError) as exc:  # a closed pipe or a closed file
            raise DeliveryRetriable(
                f"destination {self._name!r}: console write failed ({type(exc).__name__})"
            ) from None

    async def aclose(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()
