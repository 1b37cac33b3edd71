"""A local webhook endpoint that records what seqwatch delivers (tests and the demo).

Records every POST (lowercased headers, raw body, parsed JSON, whether `verify` accepted
it, and what was answered); failures can be scripted with `fail_next`. With `slack=True`
it answers like a Slack incoming webhook ("ok", text/plain).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from worker.demo.fakes.server import FakeServer, Request, Response, retry_after_value

Verifier = Callable[[Mapping[str, str], bytes], bool]


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    path: str
    headers: Mapping[str, str]  # lowercased names
    body: bytes
    json: Any  # None when the body is not JSON
    verified: bool | None  # None when the receiver has no verifier
    status: int  # what the receiver answered
    retry_after: float | None = field(default=None)

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300

    @property
    def webhook_id(self) -> str | None:
        return self.headers.get("webhook-id")


class WebhookReceiver:
    """An App (mountable) that can also run its own FakeServer via start()/stop()."""

    def __init__(self, *, verify: Verifier | None = None, slack: bool = False) -> None:
        self._verify = verify
        self._slack = slack
        self._cond = threading.Condition()
        self._deliveries: list[Delivery] = []
        self._failures: list[tuple[int, float | None]] = []
        self._server: FakeServer | None = None

    # -- serving ---------------------------------------------------------------------------
    def start(self) -> str:
        if self._server is None:
            self._server = FakeServer(self)
        return self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def url(self) -> str:
        """Base URL of the running receiver (any path below it is accepted)."""
        return self._server.base_url if self._server else ""

    def __enter__(self) -> WebhookReceiver:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- scripting and inspection ----------------------------------------------------------
    def fail_next(
        self, times: int = 1, *, status: int = 503, retry_after: float | None = None
    ) -> None:
        with self._cond:
            self._failures.extend([(status, retry_after)] * times)

    @property
    def deliveries(self) -> list[Delivery]:
        """Every POST received, failed ones included, in arrival order."""
        with self._cond:
            return list(self._deliveries)

    @property
    def accepted(self) -> list[Delivery]:
        with self._cond:
            return [d for d in self._deliveries if d.accepted]

    def received_ids(self) -> list[str]:
        """`webhook-id` of every accepted delivery, in order (duplicates kept)."""
        return [d.webhook_id for d in self.accepted if d.webhook_id is not None]

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """Block until at least `count` deliveries were accepted; False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: sum(d.accepted for d in self._deliveries) >= count, timeout
            )

    def clear(self) -> None:
        with self._cond:
            self._deliveries.clear()
            self._failures.clear()

    # -- App -------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        if request.method != "POST":
            return Response.text("method not allowed", status=405)
        headers = dict(request.headers.items())
        verified = None if self._verify is None else self._check(headers, request.body)
        with self._cond:
            status, retry_after = self._failures.pop(0) if self._failures else (200, None)
            self._deliveries.append(
                Delivery(
                    path=request.path,
                    headers=headers,
                    body=request.body,
                    json=_parse(request.body),
                    verified=verified,
                    status=status,
                    retry_after=retry_after,
                )
            )
            self._cond.notify_all()
        return self._answer(status, retry_after)

    def _check(self, headers: Mapping[str, str], body: bytes) -> bool:
        assert self._verify is not None
        try:
            return bool(self._verify(headers, body))
        except Exception:  # a verifier that raises means "not verified"
            return False

    def _answer(self, status: int, retry_after: float | None) -> Response:
        extra = {} if retry_after is None else {"Retry-After": retry_after_value(retry_after)}
        if self._slack:
            text = "ok" if status == 200 else ("rate_limited" if status == 429 else "error")
            return Response(
                status=status,
                headers={"Content-Type": "text/plain", **extra},
                body=text.encode(),
            )
        if status == 200:
            return Response.json({"received": True})
        return Response.json({"error": "scripted failure"}, status=status, headers=extra)


def _parse(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None
