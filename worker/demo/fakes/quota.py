"""A provider quota enforced by a fake: N requests per sliding window, else 429 + Retry-After."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from worker.demo.fakes.server import App, Request, Response, retry_after_value


class QuotaGate(App):
    """Wraps an App; answers 429 once more than `requests` arrive within `per_seconds`."""

    def __init__(
        self,
        inner: App,
        *,
        requests: int,
        per_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self._requests = requests
        self._window = per_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._recent: deque[float] = deque()
        self.refused = 0
        self.admitted = 0

    def handle(self, request: Request) -> Response:
        with self._lock:
            now = self._clock()
            while self._recent and self._recent[0] <= now - self._window:
                self._recent.popleft()
            if len(self._recent) >= self._requests:
                self.refused += 1
                wait = self._recent[0] + self._window - now
                return Response.json(
                    {"title": "Too Many Requests", "status": 429},
                    status=429,
                    headers={"Retry-After": retry_after_value(max(wait, 0.01))},
                )
            self._recent.append(now)
            self.admitted += 1
        return self.inner.handle(request)
