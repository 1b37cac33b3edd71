"""Unify GTM Sequences API v1: stream enrollments (cursor paging, `updated_after` incremental).

Each enrollment carries its own `sequence`, so pages have no SequenceRef.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from worker.sources.base import RawPage
from worker.sources.http import ProviderClient, client_for
from worker.sources.pagination import allow_list, require_list, require_object
from worker.sources.paging import CursorPager, CursorPaging
from worker.sources.params import ProviderInfo
from worker.sources.shared_limiter import Quota

if TYPE_CHECKING:
    from worker.sources.params import SourceParams

DEFAULT_BASE_URL = "https://api.unifygtm.com"
REQUESTS_PER_SECOND = 100_000 / 300  # 100,000 requests per 5 minutes per key
AUTH_HEADER = "x-api-key"
MAX_PAGE_SIZE = 100
_ENROLLMENTS = "/sequences/v1/enrollments"
PAGING = CursorPaging(
    limit_param="limit",
    cursor_param="cursor",
    items_key="enrollments",
    next_key="next_cursor",
    max_page_size=MAX_PAGE_SIZE,
)


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
        self.name = name
        self._client = client
        self._sequences = allow_list(sequences)
        self._pager = CursorPager(
            client, PAGING, source=name, page_size=page_size, max_pages=max_pages
        )

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
        params: dict[str, str | int] = {}
        if sequence_id is not None:
            params["sequence_id"] = sequence_id
        if updated_after is not None:
            params["updated_after"] = updated_after
        label = "enrollments" if sequence_id is None else f"sequence {sequence_id}, enrollments"
        async for records, where in self._pager.pages(_ENROLLMENTS, label=label, params=params):
            yield RawPage(records=records, where=where)


def build(params: SourceParams) -> UnifySource:
    client = client_for(
        params,
        default_base_url=DEFAULT_BASE_URL,
        requests_per_second=REQUESTS_PER_SECOND,
        headers={AUTH_HEADER: params.api_key},
    )
    return UnifySource(name=params.name, client=client, sequences=params.sequences)


PROVIDER = ProviderInfo(
    slug="unify",
    default_base_url=DEFAULT_BASE_URL,
    requests_per_second=REQUESTS_PER_SECOND,
    incremental=True,
    build=build,
    quotas=(Quota(requests=100_000, per_seconds=300),),
)
