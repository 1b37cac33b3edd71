"""The extension point for providers: a Source streams raw pages; it writes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from worker.enrollment import Contact, SequenceRef


@dataclass(frozen=True, slots=True, kw_only=True)
class RawPage:
    """One page of raw provider records plus the context needed to normalize them.

    `where` names the page for error messages ("sequence 100, skip=1000"), never a payload.
    `skipped_sequences` names sequences this listing deliberately did not list (e.g. archived
    ones between full syncs): their stored enrollments are kept, neither seen nor absent.
    """

    records: Sequence[Mapping[str, Any]]
    where: str
    sequence: SequenceRef | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    skipped_sequences: tuple[str, ...] = ()


class Source(Protocol):
    """Lists every enrollment of one configured source, page by page.

    `pages(updated_after=None)` is a complete listing; with a timestamp (only where
    `incremental` is true) it lists just what changed since then, inclusive. Any failure
    raises a worker.errors.SourceError subclass; a listing that ends without raising is
    complete.
    """

    @property
    def incremental(self) -> bool: ...

    def pages(self, *, updated_after: str | None = None) -> AsyncIterator[RawPage]: ...

    async def check(self) -> None:
        """One cheap authenticated request; raises SourceError when credentials fail."""
        ...


@runtime_checkable
class ContactLookup(Protocol):
    """Optional: a Source whose listing names contacts only by id (and type) provides this.

    Given contacts with `id` and `type` set, it returns the ones it found, keyed by the very
    objects it was given, with `email`/`name`/`company` filled in. It must not raise for a
    failed lookup (it logs and returns what it has), and it should not retry long: events
    wait for it. The pipeline calls it only for enrollments that may produce events, and
    caches what it returns (worker/detect/contacts.py).
    """

    async def contacts(self, wanted: Collection[Contact]) -> Mapping[Contact, Contact]: ...
