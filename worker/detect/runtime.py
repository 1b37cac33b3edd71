"""SourceRuntime: everything a poll needs about one configured source."""

from __future__ import annotations

from dataclasses import dataclass, field

from worker.detect.continuity import SourceMemory
from worker.normalize import Normalizer
from worker.sources.base import Source
from worker.sources.memory import RedisMemory
from worker.sources.shared_limiter import SharedRateLimiter


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceRuntime:
    """Everything the pipeline needs about one configured source."""

    name: str
    provider: str
    source: Source
    normalize: Normalizer
    full_sync_interval: float = 86_400.0
    # What this process last knew of the source's stored history (worker/detect/continuity.py).
    memory: SourceMemory = field(default_factory=SourceMemory, compare=False)
    # The source's shared quota and Redis memory, when it has them (worker/app/deps.py): the
    # poll's opening takes its first request's slot and reads the memory (one round trip each
    # less per poll).
    limiter: SharedRateLimiter | None = field(default=None, compare=False)
    provider_memory: RedisMemory | None = field(default=None, compare=False)
