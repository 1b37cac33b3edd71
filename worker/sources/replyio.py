"""Reply.io API v3 (the current public API) and v4: sequences, then each one's contacts.

Both versions page with top/skip and `{items, hasMore}`; what differs is data: the path
prefix and the record shape (the normalizer reads both). `api_version = "auto"` probes
`GET /v3/sequences?top=1` (v3 is Reply's current public API), falls back to `/v4`, remembers
the answer in the source's memory, and probes again when a listing answers 404.

Archived sequences cannot send, so their contacts are listed only every
`full_sync_interval`; polls in between name them in `RawPage.skipped_sequences` so their
stored enrollments are kept. An allow-listed source reuses the sequence listing a poll read
less than an hour ago (worker/sources/known_sequences.py): one request per poll fewer. There is
no updated-since filter: every poll lists every contact of every live sequence, oldest first
(`sort_by=addingDate`, ascending) so contacts added during a listing land after the pages
already read.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import aclosing
from typing import Any
from urllib.parse import quote

import structlog

from worker.enrollment import SequenceRef
from worker.errors import SourceRejected
from worker.normalize.replyio import ContactsPageV4
from worker.sources import known_sequences
from worker.sources.base import RawPage
from worker.sources.http import ProviderClient, client_for
from worker.sources.pagination import allow_list, optional_str, require_id
from worker.sources.paging import OffsetPager, OffsetPaging
from worker.sources.params import LocalMemory, ProviderInfo, SourceMemory, SourceParams
from worker.sources.shared_limiter import Quota
from worker.sources.typed import typed_decoder

DEFAULT_BASE_URL = "https://api.reply.io"
REQUESTS_PER_SECOND = 100 / 60  # 100 requests/minute per user
VERSIONS = ("v3", "v4")  # probed in this order
API_VERSIONS = ("auto", *VERSIONS)
MAX_PAGE_SIZE = 1000
PAGING = OffsetPaging(
    limit_param="top", offset_param="skip", items_key="items", max_page_size=MAX_PAGE_SIZE,
    end="has_more",
)  # fmt: skip
# Stable, oldest-first order: Reply lists newest first by default, which shifts every offset
# whenever a contact is added during a listing.
CONTACT_ORDER = {"sort_by": "addingDate", "sort_direction": "asc"}
ARCHIVED_STATUSES = frozenset({"archived"})  # sequence `status`, lower-cased; plus `isArchived`
# v4 contact pages are decoded straight into what the normalizer's `read_typed` reads.
CONTACTS_V4 = typed_decoder(
    ContactsPageV4, items_key="items", more_key="hasMore", key_field="contactId"
)
MEMORY_VERSION = "api_version"
MEMORY_DEEP = "archived_listed_at"
MEMORY_SEQUENCES = "sequences_listed"  # allow-listed sources only
_log = structlog.get_logger(__name__)


def auth_headers(api_key: str) -> dict[str, str]:
    """v4 documents `X-API-Key`; v3 documents `Authorization: Bearer` and Reply's own v3
    clients send `X-API-Key`: both go, so either version accepts the request."""
    return {"X-API-Key": api_key, "Authorization": f"Bearer {api_key}"}


class ReplyioSource:
    def __init__(
        self,
        *,
        name: str,
        client: ProviderClient,
        sequences: tuple[str, ...],
        page_size: int = MAX_PAGE_SIZE,
        max_pages: int = 10_000,
        api_version: str = "auto",
        memory: SourceMemory | None = None,
        full_sync_interval: float = 86_400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if api_version not in API_VERSIONS:
            raise ValueError(f"api_version must be one of {', '.join(API_VERSIONS)}")
        self.name = name
        self._client = client
        self._allow = allow_list(sequences)
        self._pager = OffsetPager(
            client, PAGING, source=name, page_size=page_size, max_pages=max_pages,
            item_key=_item_key,
        )  # fmt: skip
        self._configured = api_version
        self._memory = memory or LocalMemory()
        self._full_sync_interval = full_sync_interval
        self._clock = clock

    def __repr__(self) -> str:
        return f"ReplyioSource(name={self.name!r})"

    @property
    def incremental(self) -> bool:
        return False

    async def pages(self, *, updated_after: str | None = None) -> AsyncIterator[RawPage]:
        # `updated_after` is ignored: a full listing is a superset of any incremental one.
        started = self._clock()
        # What the source remembers, in one round trip: its last deep listing, its API version
        # and (allow-listed) its sequence listing.
        last_deep, remembered, listed = await self._memory.get_many(
            MEMORY_DEEP, MEMORY_VERSION, MEMORY_SEQUENCES
        )
        deep = self._deep_listing_due(started, last_deep)
        version, sequences = await self._sequences(
            remembered, listed=None if deep else listed, now=started
        )
        skipped = tuple(s.id for s, archived in sequences if archived and not deep)
        if skipped:
            yield RawPage(
                records=[], where=f"{len(skipped)} archived sequences", skipped_sequences=skipped
            )
        for sequence, archived in sequences:
            if archived and not deep:
                continue
            async with aclosing(self._contacts(version, sequence)) as pages:
                async for page in pages:
                    yield page
        if deep:
            await self._memory.set(MEMORY_DEEP, repr(started))

    async def check(self) -> None:
        version = await self._version(await self._memory.get(MEMORY_VERSION))
        try:
            await self._client.get_json(
                f"/{version}/sequences", params={"top": 1}, where="credentials check"
            )
        except SourceRejected as exc:
            if exc.http_status != 404 or self._configured != "auto":
                raise
            await self._detect(previous=version)  # the remembered version is gone

    async def api_version(self) -> str:
        """The version in use (detecting it if it is not known yet)."""
        return await self._version(await self._memory.get(MEMORY_VERSION))

    def _deep_listing_due(self, now: float, last: str | None) -> bool:
        try:
            return last is None or now - float(last) >= self._full_sync_interval
        except ValueError:
            return True

    async def _version(self, remembered: str | None) -> str:
        """The version to use, given the one the memory holds."""
        if self._configured != "auto":
            if remembered != self._configured:
                await self._memory.set(MEMORY_VERSION, self._configured)  # shown by `status`
            return self._configured
        return remembered if remembered in VERSIONS else await self._detect(previous=None)

    async def _detect(self, *, previous: str | None) -> str:
        for version in VERSIONS:
            try:
                await self._client.get_json(
                    f"/{version}/sequences", params={"top": 1}, where=f"API {version} probe"
                )
            except SourceRejected as exc:
                if exc.http_status == 404:
                    continue
                raise
            await self._memory.set(MEMORY_VERSION, version)
            _log.info(
                "replyio_api_version_detected", source=self.name, api_version=version,
                previous=previous,
            )  # fmt: skip
            return version
        await self._memory.forget(MEMORY_VERSION)
        raise SourceRejected(
            "neither /v3 nor /v4 sequences exist (HTTP 404): check base_url",
            source=self.name,
            where="API version probe",
            http_status=404,
        )

    async def _sequences(
        self, remembered: str | None, *, listed: str | None, now: float
    ) -> tuple[str, known_sequences.Listed]:
        """The version in use and the sequences to list (each with: is it archived?): the
        listing `listed` remembers when it may be used (worker/sources/known_sequences.py),
        else the provider's, then remembered."""
        version = await self._version(remembered)
        known = known_sequences.recall(listed, version=version, allow=self._allow, now=now)
        if known is not None:
            return version, known
        try:
            sequences = await self._sequence_listing(version)
        except SourceRejected as exc:
            if exc.http_status != 404 or self._configured != "auto":
                raise
            # The remembered version is gone (an account moved between versions): detect again.
            version = await self._detect(previous=version)
            sequences = await self._sequence_listing(version)
        if self._allow:
            kept = known_sequences.remember(sequences, version=version, allow=self._allow, at=now)
            await self._memory.set(MEMORY_SEQUENCES, kept)
        return version, sequences

    async def _sequence_listing(self, version: str) -> known_sequences.Listed:
        allow = set(self._allow)
        found: dict[str, tuple[SequenceRef, bool]] = {}
        listing = self._pager.pages(f"/{version}/sequences", label="sequences")
        async with aclosing(listing) as pages:
            async for items, where in pages:
                for index, item in enumerate(items):
                    if allow and not _listed(item.get("id"), allow):
                        continue  # not ours (a bad id there cannot be one of ours either)
                    at = f"{where}, item {index}"
                    sequence_id = require_id(item, "id", source=self.name, where=at)
                    # A name only labels events: its absence must not fail the listing.
                    name = (
                        optional_str(item, "name", source=self.name, where=at)
                        if "name" in item
                        else None
                    )
                    if (not allow or sequence_id in allow) and sequence_id not in found:
                        found[sequence_id] = (
                            SequenceRef(id=sequence_id, name=name),
                            _archived(item),
                        )
                # Every allow-listed sequence is named: the rest of the listing cannot matter.
                if allow and len(found) == len(allow):
                    break
        # The allow-list is explicit: list ids the listing did not show too.
        missing = [(SequenceRef(id=s), False) for s in self._allow if s not in found]
        return [*found.values(), *missing]

    async def _contacts(self, version: str, sequence: SequenceRef) -> AsyncGenerator[RawPage]:
        path = f"/{version}/sequences/{quote(sequence.id, safe='')}/contacts"
        extra = {"api_version": version}
        label = f"sequence {sequence.id}, contacts"
        try:
            async with aclosing(
                self._pager.pages(
                    path,
                    label=label,
                    params=CONTACT_ORDER,
                    decode=CONTACTS_V4 if version == "v4" else None,
                )
            ) as pages:
                async for items, where in pages:
                    yield RawPage(records=items, where=where, sequence=sequence, extra=extra)
        except SourceRejected as exc:
            if exc.http_status == 404 and self._configured == "auto":
                await self._memory.forget(MEMORY_VERSION)  # the next poll detects again
            raise


def _listed(raw: object, allow: set[str]) -> bool:
    """Is this listing id one of the allow-listed ones? Cheap: many sources may each allow one
    sequence of an account that has thousands."""
    if isinstance(raw, str):
        return raw in allow
    return type(raw) is int and str(raw) in allow


def _archived(item: Mapping[str, Any]) -> bool:
    status = item.get("status")
    return item.get("isArchived") is True or (
        isinstance(status, str) and status.lower() in ARCHIVED_STATUSES
    )


def _item_key(item: Mapping[str, Any]) -> object:
    value = item.get("contactId", item.get("id"))
    return value if isinstance(value, str | int) else None


def build(params: SourceParams) -> ReplyioSource:
    client = client_for(
        params,
        default_base_url=DEFAULT_BASE_URL,
        requests_per_second=REQUESTS_PER_SECOND,
        headers=auth_headers(params.api_key),
    )
    return ReplyioSource(
        name=params.name,
        client=client,
        sequences=params.sequences,
        api_version=params.api_version,
        memory=params.memory,
        full_sync_interval=params.full_sync_interval,
    )


PROVIDER = ProviderInfo(
    slug="replyio",
    default_base_url=DEFAULT_BASE_URL,
    requests_per_second=REQUESTS_PER_SECOND,
    incremental=False,
    build=build,
    quotas=(Quota(requests=100, per_seconds=60), Quota(requests=3000, per_seconds=3600)),
)
