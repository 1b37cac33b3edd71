"""One pure normalizer per provider: raw record -> Enrollment, plus a cheap `peek`.

`peek` reads only what decides whether a record changed: (enrollment id, updated_at, the
State's fields in State order) with no dataclass built, and checks every field the full
normalizer checks, so a record it accepts is one the full normalizer accepts too. It raises
(anything) on whatever it does not read plainly; the caller then takes the full path, which
quarantines what is really bad. Its result must equal the full normalizer's (tests/unit/
test_peek.py checks that on every vendor example and fake record).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from worker.enrollment import Enrollment
from worker.normalize import replyio, unify, whippy, zendesk_sell
from worker.normalize.fields import Peek, StateFields
from worker.sources.base import RawPage

__all__ = ["NORMALIZERS", "Normalizer", "Peek", "Peeker", "ProviderNormalizer", "StateFields"]


class FullNormalizer(Protocol):
    def __call__(self, record: Mapping[str, Any], *, page: RawPage) -> Enrollment: ...


class Peeker(Protocol):
    def __call__(self, record: Mapping[str, Any], *, page: RawPage) -> Peek: ...


class Normalizer(Protocol):
    @property
    def peek(self) -> Peeker | None: ...

    def __call__(self, record: Mapping[str, Any], *, page: RawPage) -> Enrollment: ...


@dataclass(frozen=True, slots=True)
class ProviderNormalizer:
    """A provider's normalizer; `peek` None: every record takes the full path. `read_typed`:
    `peek` over a page of typed records (worker/sources/typed.py), when its source decodes any
    (see replyio.read_typed). It reads every record of a page, or sends every one to `odd`;
    the typed shape declares every field `full` reads from a record `read_typed` accepts, since
    such a record is normalized from its declared fields alone."""

    full: FullNormalizer
    peek: Peeker | None = None
    read_typed: Callable[..., None] | None = None

    def __call__(self, record: Mapping[str, Any], *, page: RawPage) -> Enrollment:
        return self.full(record, page=page)


NORMALIZERS: dict[str, Normalizer] = {
    "replyio": ProviderNormalizer(replyio.normalize, replyio.peek, replyio.read_typed),
    "unify": ProviderNormalizer(unify.normalize, unify.peek),
    "zendesk_sell": ProviderNormalizer(zendesk_sell.normalize, zendesk_sell.peek),
    "whippy": ProviderNormalizer(whippy.normalize, whippy.peek),
}
