"""Readiness as the daemon sees it, for `/readyz` (worker/ops/metrics_http.py)."""

from __future__ import annotations

import time
from collections.abc import Callable


class Probes:
    """What the daemon tells the probes: a worker started, and when it last scheduled polls."""

    def __init__(self, *, stale_after_s: float, clock: Callable[[], float] = time.monotonic):
        self._stale_after = stale_after_s
        self._clock = clock
        self._scheduled_at: float | None = None
        self.worker_running = False

    def scheduled(self) -> None:
        self._scheduled_at = self._clock()

    def ready(self) -> tuple[bool, str]:
        if not self.worker_running:
            return False, "worker not running"
        if self._scheduled_at is None:
            return False, "worker started, not scheduling yet"
        age = self._clock() - self._scheduled_at
        if age > self._stale_after:
            return False, f"last scheduling tick {age:.0f} s ago"
        return True, "ok"
