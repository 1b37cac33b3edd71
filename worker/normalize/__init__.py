"""One pure normalizer per provider: raw record -> Enrollment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from worker.enrollment import Enrollment
from worker.normalize import replyio, unify, whippy, zendesk_sell
from worker.sources.base import RawPage


class Normalizer(Protocol):
    def __call__(self, record: Mapping[str, Any], *, page: RawPage) -> Enrollment: ...


NORMALIZERS: dict[str, Normalizer] = {
    "replyio": replyio.normalize,
    "unify": unify.normalize,
    "zendesk_sell": zendesk_sell.normalize,
    "whippy": whippy.normalize,
}
