"""Offset and cursor paging, once for every provider: what differs is data (`OffsetPaging`,
`CursorPaging`).

Singer-SDK style: a provider declares its parameter names, envelope keys, page limits and how
a listing ends; `OffsetPager` does the paging and refuses anything that would make a listing
look complete when it is not (see worker/sources/pagination.py).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from worker.errors import MalformedResponse, SourceRejected
from worker.sources.http import Params, ProviderClient
from worker.sources.pagination import (
    PageGuard,
    check_page_size,
    optional_str,
    require_bool,
    require_list,
    require_object,
)
from worker.sources.typed import TypedRecords

_log = structlog.get_logger(__name__)

Items = Sequence[Mapping[str, Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class OffsetPaging:
    """How one API pages by offset.

    `end="has_more"`: the envelope's `has_more_key` (top level, or under `info` as older
    Reply.io snapshots send it) says whether another page follows. `end="total"`: the
    listing ends at the envelope's `total_key`; without a count, at a page shorter than asked.
    """

    limit_param: str
    offset_param: str
    items_key: str
    max_page_size: int
    end: Literal["has_more", "total"]
    has_more_key: str = "hasMore"
    total_key: str = "total"
    # A smaller page size to fall back to when a 400/422 refuses the larger one.
    fallback_page_size: int | None = None


def _default_key(item: Mapping[str, Any]) -> Hashable:
    value = item.get("id")
    return value if isinstance(value, str | int) else None


class OffsetPager:
    """Pages one path after another; one instance per source (it remembers a fallback)."""

    __slots__ = ("_client", "_item_key", "_max_pages", "_page_size", "_paging", "_source")

    def __init__(
        self,
        client: ProviderClient,
        paging: OffsetPaging,
        *,
        source: str,
        page_size: int | None = None,
        max_pages: int = 10_000,
        item_key: Callable[[Mapping[str, Any]], Hashable] = _default_key,
    ) -> None:
        self._client = client
        self._paging = paging
        self._source = source
        self._page_size = check_page_size(page_size or paging.max_page_size, paging.max_page_size)
        self._max_pages = max_pages
        self._item_key = item_key

    async def pages(
        self,
        path: str,
        *,
        label: str,
        params: Params | None = None,
        decode: Callable[[bytes], Any] | None = None,
    ) -> AsyncGenerator[tuple[Items, str]]:
        """Yields (items, where) for every page of `path` until the listing's end; `decode`:
        see ProviderClient.get_json."""
        guard = PageGuard(self._max_pages, source=self._source)
        offset, total = 0, None
        while True:
            where = f"{label} page {guard.pages + 1} ({self._paging.offset_param}={offset})"
            guard.advance((offset, total), where=where)  # a rewind comes with a smaller total
            items, more, page_total, limit = await self._fetch(
                path, params, offset=offset, where=where, decode=decode
            )
            self._check(items, more, page_total, limit=limit, offset=offset, where=where)
            if items:
                guard.received(self._fingerprint(items), where=where)
            yield items, where
            if self._paging.end == "has_more":
                if not more:
                    return
                offset += len(items)
                continue
            if page_total is None:
                if len(items) < limit:
                    return
                offset += len(items)
                continue
            # Rows deleted before our offset shift later rows back past it: step back over them.
            shrunk = 0 if total is None else max(0, total - page_total)
            total = page_total
            if shrunk:
                offset = max(0, offset - shrunk)
                continue
            offset += len(items)
            if offset >= total:
                return

    async def _fetch(
        self,
        path: str,
        params: Params | None,
        *,
        offset: int,
        where: str,
        decode: Callable[[bytes], Any] | None,
    ) -> tuple[Items, bool, int | None, int]:
        limit = self._page_size
        fallback = self._paging.fallback_page_size
        try:
            doc = await self._get(
                path, params, limit=limit, offset=offset, where=where, decode=decode
            )
        except SourceRejected as exc:
            if fallback is None or limit <= fallback or exc.http_status not in (400, 422):
                raise
            # The larger maximum is not documented for every endpoint: use the smaller page
            # size for the rest of this source's life.
            _log.warning("page_size_fallback", source=self._source, where=where, page_size=fallback)
            self._page_size = limit = fallback
            doc = await self._get(
                path, params, limit=limit, offset=offset, where=where, decode=decode
            )
        items, more, total = self.envelope(doc, where=where)
        return items, more, total, limit

    async def _get(
        self,
        path: str,
        params: Params | None,
        *,
        limit: int,
        offset: int,
        where: str,
        decode: Callable[[bytes], Any] | None,
    ) -> Any:
        query = {
            **(params or {}),
            self._paging.limit_param: limit,
            self._paging.offset_param: offset,
        }
        return await self._client.get_json(path, params=query, where=where, decode=decode)

    def envelope(self, doc: Any, *, where: str) -> tuple[Items, bool, int | None]:
        """(items, another page follows, total or None) of one page."""
        obj = require_object(doc, source=self._source, where=where)
        items: Items
        typed = obj.get(self._paging.items_key)
        if isinstance(typed, TypedRecords):  # its decoder checked it is a list of objects
            items = typed
        else:
            items = require_list(obj, self._paging.items_key, source=self._source, where=where)
        if self._paging.end == "has_more":
            key = self._paging.has_more_key
            info = obj.get("info")
            holder = info if key not in obj and isinstance(info, Mapping) and key in info else obj
            return items, require_bool(holder, key, source=self._source, where=where), None
        total = obj.get(self._paging.total_key)
        if total is not None and (
            isinstance(total, bool) or not isinstance(total, int) or total < 0
        ):
            raise MalformedResponse(
                f"field {self._paging.total_key!r} is not a non-negative integer",
                source=self._source,
                where=where,
            )
        return items, True, total

    def _check(
        self,
        items: Items,
        more: bool,
        total: int | None,
        *,
        limit: int,
        offset: int,
        where: str,
    ) -> None:
        problem = None
        if len(items) > limit:
            problem = f"page has {len(items)} records, more than {self._paging.limit_param}={limit}"
        elif self._paging.end == "has_more" and more and not items:
            # Paging on would repeat this offset forever; stopping would truncate the listing.
            problem = f"field {self._paging.has_more_key!r} is true but the page is empty"
        elif total is not None and not items and offset < total:
            problem = f"empty page before the end (field {self._paging.total_key!r} is {total})"
        elif total is not None and offset + len(items) > total:
            problem = f"page runs past field {self._paging.total_key!r} ({total})"
        if problem is not None:
            raise MalformedResponse(problem, source=self._source, where=where)

    def _fingerprint(self, items: Items) -> Hashable:
        """Enough to tell a page served twice from the next one."""
        if isinstance(items, TypedRecords):  # read from the typed records: no dicts decoded
            return len(items), items.item_key(0), items.item_key(-1)
        return len(items), self._item_key(items[0]), self._item_key(items[-1])


@dataclass(frozen=True, slots=True, kw_only=True)
class CursorPaging:
    """How one API pages by cursor: the next page's cursor is in `next_key`; null ends it."""

    limit_param: str
    cursor_param: str
    items_key: str
    next_key: str
    max_page_size: int


class CursorPager:
    """Pages one path by cursor; a repeated cursor or an empty-string one is malformed."""

    __slots__ = ("_client", "_max_pages", "_page_size", "_paging", "_source")

    def __init__(
        self,
        client: ProviderClient,
        paging: CursorPaging,
        *,
        source: str,
        page_size: int | None = None,
        max_pages: int = 100_000,
    ) -> None:
        self._client = client
        self._paging = paging
        self._source = source
        self._page_size = check_page_size(page_size or paging.max_page_size, paging.max_page_size)
        self._max_pages = max_pages

    async def pages(
        self, path: str, *, label: str, params: Params | None = None
    ) -> AsyncGenerator[tuple[Items, str]]:
        guard = PageGuard(self._max_pages, source=self._source)
        cursor: str | None = None
        while True:
            where = f"{label} page {guard.pages + 1}"
            guard.advance(cursor, where=where)
            query: dict[str, Any] = {**(params or {}), self._paging.limit_param: self._page_size}
            if cursor is not None:
                query[self._paging.cursor_param] = cursor
            doc = await self._client.get_json(path, params=query, where=where)
            obj = require_object(doc, source=self._source, where=where)
            items = require_list(obj, self._paging.items_key, source=self._source, where=where)
            next_cursor = optional_str(obj, self._paging.next_key, source=self._source, where=where)
            if next_cursor == "":
                # Neither "the end" (that is null) nor a cursor we can follow.
                raise MalformedResponse(
                    f"field {self._paging.next_key!r} is an empty string",
                    source=self._source,
                    where=where,
                )
            yield items, where
            if next_cursor is None:
                return
            cursor = next_cursor
