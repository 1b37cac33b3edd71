"""Unify GTM Sequences API v1: stream enrollments (cursor paging, `updated_after` incremental).

Each enrollment carries its own `sequence`, so pages have no SequenceRef.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from worker.errors import MalformedResponse
from worker.sources.base import RawPage
from worker.sources.http import ProviderClient, client_for
from worker.sources.pagination import (
    PageGuard,
    allow_list,
    check_page_size,
    optional_str,
    require_list,
    require_object,
)

if TYPE_CHECKING:
    from worker.sources.params import SourceParams

DEFAULT_BASE_URL = "https://api.unifygtm.com"
REQUESTS_PER_SECOND = 100_000 / 300  # 100,000 requests per 5 minutes per key
AUTH_HEADER = "x-api-key"
MAX_PAGE_SIZE = 100
_ENROLLMENTS = "/sequences/v1/enrollments"


class UnifySource:
    def __init__(
        self,
        *,
        name: str,
        client: ProviderClient,
        sequences: tuple[str, ...],
        page_size: int = MAX_PAGE_SIZE,
        max_pages: int = 100_000,
    ) -> None:
        check_page_size(page_size, MAX_PAGE_SIZE)
        self.name = name
        self._client = client
        self._sequences = allow_list(sequences)
        self._page_size = page_size
        self._max_pages = max_pages

    def __repr__(self) -> str:
        return f"UnifySource(name={self.name!r})"

    @property
    def incremental(self) -> bool:
        return True

    async def pages(self, *, updated_after: str | None = None) -> AsyncIterator[RawPage]:
        # One listing per allow-listed sequence: the API filters by a single sequence_id.
        for sequence_id in self._sequences or (None,):
            async for page in self._listing(sequence_id, updated_after):
                yield page

    async def check(self) -> None:
        where = "credentials check"
        doc = await self._client.get_json(_ENROLLMENTS, params={"limit": 1}, where=where)
        obj = require_object(doc, source=self.name, where=where)
        require_list(obj, "enrollments", source=self.name, where=where)

    async def _listing(
        self, sequence_id: str | None, updated_after: str | None
    ) -> AsyncIterator[RawPage]:
        guard = PageGuard(self._max_pages, source=self.name)
        cursor: str | None = None
        while True:
            number = guard.pages + 1
            where = f"enrollments page {number}"
            if sequence_id is not None:
                where = f"sequence {sequence_id}, {where}"
            guard.advance(cursor, where=where)
            params: dict[str, str | int] = {"limit": self._page_size}
            if sequence_id is not None:
                params["sequence_id"] = sequence_id
            if updated_after is not None:
                params["updated_after"] = updated_after
            if cursor is not None:
                params["cursor"] = cursor
            doc = await self._client.get_json(_ENROLLMENTS, params=params, where=where)
            obj = require_object(doc, source=self.name, where=where)
            records = require_list(obj, "enrollments", source=self.name, where=where)
            next_cursor = optional_str(obj, "next_cursor", source=self.name, where=where)
            if next_cursor == "":
                # Neither "the end" (that is null) nor a cursor we can follow.
                raise MalformedResponse(
                    "field 'next_cursor' is an empty string", source=self.name, where=where
                )
            yield RawPage(records=records, where=where)
            if next_cursor is None:
                return
            cursor = next_cursor


def build(params: SourceParams) -> UnifySource:
    client = client_for(
        params,
        default_base_url=DEFAULT_BASE_URL,
        requests_per_second=REQUESTS_PER_SECOND,
        headers={AUTH_HEADER: params.api_key},
    )
    return UnifySource(name=params.name, client=client, sequences=params.sequences)
