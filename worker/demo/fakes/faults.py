"""Scripted misbehaviour for the fake provider APIs, shared by every fake.

A test (or the demo) adds faults to a FaultPlan; the app consumes the first matching one
before answering a request. Generic faults (status, rate limit, timeout, reset, malformed
JSON, missing field) are applied here; pagination anomalies (empty_page, repeat_cursor) are
applied by each app's listing code because they depend on its paging scheme.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from worker.demo.fakes.server import Response


class FaultKind(StrEnum):
    STATUS = "status"  # answer `status` with the provider's JSON error body
    RATE_LIMIT = "rate_limit"  # 429 with the provider's body and optional Retry-After
    MALFORMED_JSON = "malformed_json"  # 200 whose JSON body is cut in half
    MISSING_FIELD = "missing_field"  # 200 whose first record lacks a required field
    TIMEOUT = "timeout"  # sleep `delay` seconds, then answer normally
    RESET = "reset"  # close the connection without answering
    EMPTY_PAGE = "empty_page"  # a page with no records that still claims more
    REPEAT_CURSOR = "repeat_cursor"  # a page that points back to an earlier page


ALL_KINDS = frozenset(FaultKind)
PAGINATION_KINDS = frozenset({FaultKind.EMPTY_PAGE, FaultKind.REPEAT_CURSOR})


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    kind: FaultKind
    status: int = 500
    retry_after: float | None = None
    delay: float = 5.0
    field: str | None = None  # for missing_field; None = the app's id field


class ErrorRenderer(Protocol):
    """A provider's error answer for (status, message), with Retry-After when given."""

    def __call__(self, status: int, message: str, *, retry_after: float | None) -> Response: ...


@dataclass(slots=True)
class _Entry:
    fault: Fault
    remaining: int
    path_contains: str | None
    passes: int = 0  # matching requests let through before the fault starts firing


class FaultPlan:
    """Thread-safe queue of faults; each entry fires `times` times, in the order added."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[_Entry] = []
        self._fired: list[tuple[FaultKind, str]] = []
        self._wake = threading.Event()

    def add(
        self,
        kind: FaultKind | str,
        *,
        times: int = 1,
        path_contains: str | None = None,
        retry_after: float | None = None,
        status: int = 500,
        delay: float = 5.0,
        field: str | None = None,
        after: int = 0,
    ) -> None:
        """`after` lets that many matching requests through first (e.g. to fail page 2)."""
        if times < 1:
            raise ValueError("times must be >= 1")
        fault = Fault(
            kind=FaultKind(kind), status=status, retry_after=retry_after, delay=delay, field=field
        )
        with self._lock:
            self._entries.append(_Entry(fault, times, path_contains, after))

    def take(self, path: str, *, kinds: Collection[FaultKind] | None = None) -> Fault | None:
        """Consume the first pending fault matching `path` (and one of `kinds`, if given)."""
        with self._lock:
            for entry in self._entries:
                if entry.path_contains is not None and entry.path_contains not in path:
                    continue
                if kinds is not None and entry.fault.kind not in kinds:
                    continue
                if entry.passes > 0:
                    entry.passes -= 1
                    return None
                entry.remaining -= 1
                if entry.remaining == 0:
                    self._entries.remove(entry)
                self._fired.append((entry.fault.kind, path))
                return entry.fault
        return None

    def pending(self) -> int:
        with self._lock:
            return sum(e.remaining for e in self._entries)

    @property
    def fired(self) -> list[tuple[FaultKind, str]]:
        """(kind, path) of every fault served so far, in order."""
        with self._lock:
            return list(self._fired)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def sleep(self, seconds: float) -> None:
        """A timeout fault's delay; `wake()` cuts every current and future delay short."""
        self._wake.wait(seconds)

    def wake(self) -> None:
        self._wake.set()


def before(
    fault: Fault | None, *, error: ErrorRenderer, sleep: Callable[[float], None]
) -> Response | None:
    """A response that replaces the real answer, or None to answer (after any delay)."""
    if fault is None:
        return None
    if fault.kind is FaultKind.STATUS:
        return error(fault.status, "Injected failure.", retry_after=fault.retry_after)
    if fault.kind is FaultKind.RATE_LIMIT:
        return error(429, "Rate limit exceeded.", retry_after=fault.retry_after)
    if fault.kind is FaultKind.RESET:
        return Response.drop()
    if fault.kind is FaultKind.TIMEOUT:
        sleep(fault.delay)
    return None


def after(
    fault: Fault | None, response: Response, *, records_key: str | None, id_field: str
) -> Response:
    """Spoil a successful answer: truncate its JSON, or drop a field from its first record."""
    if fault is None or response.status != 200:
        return response
    if fault.kind is FaultKind.MALFORMED_JSON:
        return _replace_body(response, response.body[: max(1, len(response.body) // 2)])
    if fault.kind is FaultKind.MISSING_FIELD:
        payload: Any = json.loads(response.body)
        records = payload.get(records_key) if records_key else [payload]
        if records:
            records[0].pop(fault.field or id_field, None)
        return _replace_body(response, json.dumps(payload, separators=(",", ":")).encode())
    return response


def _replace_body(response: Response, body: bytes) -> Response:
    return Response(status=response.status, headers=response.headers, body=body)
