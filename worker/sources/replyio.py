"""Reply.io API v4: list the sequences, then stream each one's contacts (top/skip, hasMore).

Reply.io has no updated-since filter, so every poll is a full listing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from worker.enrollment import SequenceRef
from worker.errors import MalformedResponse
from worker.sources.base import RawPage
from worker.sources.http import ProviderClient, client_for
from worker.sources.pagination import (
    PageGuard,
    allow_list,
    check_page_size,
    optional_str,
    require_bool,
    require_id,
    require_list,
    require_object,
)

if TYPE_CHECKING:
    from worker.sources.registry import SourceParams

DEFAULT_BASE_URL = "https://api.reply.io"
REQUESTS_PER_SECOND = 100 / 60  # 100 requests/minute per user
AUTH_HEADER = "X-API-Key"
MAX_PAGE_SIZE = 1000


class ReplyioSource:
    def __init__(
        self,
        *,
        name: str,
        client: ProviderClient,
        sequences: tuple[str, ...],
        page_size: int = MAX_PAGE_SIZE,
        max_pages: int = 10_000,
    ) -> None:
        check_page_size(page_size, MAX_PAGE_SIZE)
        self.name = name
        self._client = client
        self._allow = allow_list(sequences)
        self._page_size = page_size
        self._max_pages = max_pages

    def __repr__(self) -> str:
        return f"ReplyioSource(name={self.name!r})"

    @property
    def incremental(self) -> bool:
        return False

    async def pages(self, *, updated_after: str | None = None) -> AsyncIterator[RawPage]:
        # `updated_after` is ignored: a full listing is a superset of any incremental one.
        for sequence in await self._sequences():
            async for page in self._contacts(sequence):
                yield page

    async def check(self) -> None:
        where = "credentials check"
        doc = await self._client.get_json("/v4/sequences", params={"top": 1}, where=where)
        self._envelope(doc, where=where)

    async def _sequences(self) -> list[SequenceRef]:
        """The sequences to list: all of them, or the allow-listed ones (named when found)."""
        allow = set(self._allow)
        found: dict[str, SequenceRef] = {}
        guard = PageGuard(self._max_pages, source=self.name)
        skip = 0
        while True:
            where = f"sequences, skip={skip}"
            guard.advance(skip, where=where)
            doc = await self._client.get_json(
                "/v4/sequences", params={"top": self._page_size, "skip": skip}, where=where
            )
            items, has_more = self._envelope(doc, where=where)
            for index, item in enumerate(items):
                at = f"{where}, item {index}"
                sequence_id = require_id(item, "id", source=self.name, where=at)
                # A name only labels events: its absence must not fail the listing.
                name = (
                    optional_str(item, "name", source=self.name, where=at)
                    if "name" in item
                    else None
                )
                if (not allow or sequence_id in allow) and sequence_id not in found:
                    found[sequence_id] = SequenceRef(id=sequence_id, name=name)
            # Every allow-listed sequence is named: the rest of the listing cannot matter.
            if not has_more or (allow and len(found) == len(allow)):
                break
            skip += len(items)
        # The allow-list is explicit: list ids the listing did not show (e.g. archived) too.
        missing = [SequenceRef(id=s) for s in self._allow if s not in found]
        return [*found.values(), *missing]

    async def _contacts(self, sequence: SequenceRef) -> AsyncIterator[RawPage]:
        path = f"/v4/sequences/{quote(sequence.id, safe='')}/contacts"
        guard = PageGuard(self._max_pages, source=self.name)
        skip = 0
        while True:
            where = f"sequence {sequence.id}, skip={skip}"
            guard.advance(skip, where=where)
            doc = await self._client.get_json(
                path, params={"top": self._page_size, "skip": skip}, where=where
            )
            items, has_more = self._envelope(doc, where=where)
            if items:
                guard.received((items[0].get("contactId"), items[-1].get("contactId")), where=where)
            yield RawPage(records=items, where=where, sequence=sequence)
            if not has_more:
                return
            skip += len(items)

    def _envelope(self, doc: Any, *, where: str) -> tuple[list[Mapping[str, Any]], bool]:
        """`items` and `hasMore` (top level, or under `info` in some API versions)."""
        obj = require_object(doc, source=self.name, where=where)
        items = require_list(obj, "items", source=self.name, where=where)
        info = obj.get("info")
        if "hasMore" not in obj and isinstance(info, Mapping) and "hasMore" in info:
            has_more = require_bool(info, "hasMore", source=self.name, where=where)
        else:
            has_more = require_bool(obj, "hasMore", source=self.name, where=where)
        if has_more and not items:
            # Paging on would repeat this offset forever; stopping would truncate the listing.
            raise MalformedResponse(
                "field 'hasMore' is true but 'items' is empty", source=self.name, where=where
            )
        return items, has_more


def build(params: SourceParams) -> ReplyioSource:
    client = client_for(
        params,
        default_base_url=DEFAULT_BASE_URL,
        requests_per_second=REQUESTS_PER_SECOND,
        headers={AUTH_HEADER: params.api_key},
    )
    return ReplyioSource(name=params.name, client=client, sequences=params.sequences)
