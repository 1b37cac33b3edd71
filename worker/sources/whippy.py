"""Whippy: list the sequences, then fold each one's step-contact rows into enrollments.

`GET /v1/sequences/{id}/contacts` (limit/offset, `{data, total}`) lists one row per step a
contact reached, and one contact's rows may fall on different pages. So the rows of ONE
sequence are folded by contact id in memory (bounded by the largest sequence, never the
account) and each sequence is yielded as ONE RawPage whose records are folded contacts:

    {
      "sequence_id": "<uuid>",
      "contact": {"id": ..., "name": ..., "email": ..., "phone": ...},  # as last seen
      "rows": [{"id", "status", "step_id", "created_at", "updated_at",
                "unsubscribed", "responded"}, ...],  # every row of the contact, deduplicated
                                                     # by row id; absent keys stay absent
      "steps": {"<step id>": <0-based position>, ...},  # one dict shared by the whole page
      "last_position": <highest position> | None,       # None: the sequence has no steps
    }

Steps come from `GET /v1/sequences/{id}`, read after the rows so steps added meanwhile are
known. There is no updated-since filter, so every poll is a full listing.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import structlog

from worker.enrollment import SequenceRef
from worker.errors import MalformedResponse, SourceRejected
from worker.sources.base import RawPage
from worker.sources.http import ProviderClient, client_for, generic_error_text
from worker.sources.pagination import (
    PageGuard,
    allow_list,
    check_page_size,
    optional_str,
    require_id,
    require_list,
    require_object,
)

if TYPE_CHECKING:
    from worker.sources.registry import SourceParams

DEFAULT_BASE_URL = "https://api.whippy.co"
REQUESTS_PER_SECOND = 20.0  # documented 25 req/s per key and per organization: keep headroom
AUTH_HEADER = "X-WHIPPY-KEY"
RETRY_MS_HEADER = "X-RateLimit-Remaining-Interval-Milliseconds"
MAX_PAGE_SIZE = 500  # documented for contact-sequences; the list endpoints are not documented
FALLBACK_PAGE_SIZE = 100  # what an unofficial client clamps to, should 500 be refused
# The only row fields the normalizer reads: messages and bodies are not kept in memory.
ROW_FIELDS = ("id", "status", "step_id", "created_at", "updated_at", "unsubscribed", "responded")
_log = structlog.get_logger(__name__)


class WhippySource:
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
        self._pager = _OffsetPager(client, source=name, page_size=page_size, max_pages=max_pages)

    def __repr__(self) -> str:
        return f"WhippySource(name={self.name!r})"

    @property
    def incremental(self) -> bool:
        return False

    async def pages(self, *, updated_after: str | None = None) -> AsyncIterator[RawPage]:
        # `updated_after` is ignored: a full listing is a superset of any incremental one.
        for sequence in await self._sequences():
            yield await self._sequence_page(sequence)

    async def check(self) -> None:
        where = "credentials check"
        doc = await self._client.get_json("/v1/sequences", params={"limit": 1}, where=where)
        _envelope(doc, source=self.name, where=where)

    async def _sequences(self) -> list[SequenceRef]:
        """The sequences to list: all of them, or the allow-listed ones (named when found)."""
        allow = set(self._allow)
        found: dict[str, SequenceRef] = {}
        async with aclosing(self._pager.pages("/v1/sequences", label="sequences")) as pages:
            async for items, where in pages:
                for index, item in enumerate(items):
                    at = f"{where}, item {index}"
                    sequence_id = require_id(item, "id", source=self.name, where=at)
                    # A title only labels events: its absence must not fail the listing.
                    title = _title(item, source=self.name, where=at)
                    if (not allow or sequence_id in allow) and sequence_id not in found:
                        found[sequence_id] = SequenceRef(id=sequence_id, name=title)
                # Every allow-listed sequence is named: the rest of the listing cannot matter.
                if allow and len(found) == len(allow):
                    break
        # The allow-list is explicit: list ids the listing did not show (e.g. archived) too.
        missing = [SequenceRef(id=s) for s in self._allow if s not in found]
        return [*found.values(), *missing]

    async def _sequence_page(self, sequence: SequenceRef) -> RawPage:
        path = f"/v1/sequences/{quote(sequence.id, safe='')}"
        folded: dict[str, _Contact] = {}
        # Rows naming no readable contact cannot be folded; passed on alone, the normalizer
        # quarantines them as records whose id is unreadable (the listing is then incomplete).
        unfoldable: list[Mapping[str, Any]] = []
        pages = 0
        label = f"sequence {sequence.id}, contacts"
        async with aclosing(self._pager.pages(f"{path}/contacts", label=label)) as listing:
            async for rows, where in listing:
                pages += 1
                for index, row in enumerate(rows):
                    try:
                        contact, contact_id = self._contact(row, where=f"{where}, record {index}")
                    except MalformedResponse:
                        if not isinstance(row, Mapping):
                            raise
                        unfoldable.append(row)
                        continue
                    entry = folded.get(contact_id)
                    if entry is None:
                        folded[contact_id] = entry = _Contact(contact)
                    entry.add(contact, row)
        steps, title = await self._steps(path, sequence)
        shared = {"steps": steps, "last_position": max(steps.values(), default=None)}
        records = [
            {"sequence_id": sequence.id, "contact": c.contact, "rows": list(c.rows.values())}
            | shared
            for c in folded.values()
        ] + [{"sequence_id": sequence.id, "contact": None, "rows": [row]} for row in unfoldable]
        return RawPage(
            records=records,
            where=f"sequence {sequence.id}, contacts ({pages} pages)",
            sequence=SequenceRef(id=sequence.id, name=title or sequence.name),
        )

    def _contact(self, row: Mapping[str, Any], *, where: str) -> tuple[Mapping[str, Any], str]:
        """The row's contact and its id: the one thing folding cannot do without."""
        contact = row.get("contact")
        if not isinstance(contact, Mapping):
            raise MalformedResponse(
                "field 'contact' is missing or not an object", source=self.name, where=where
            )
        return contact, require_id(contact, "id", source=self.name, where=f"{where}, contact")

    async def _steps(self, path: str, sequence: SequenceRef) -> tuple[dict[str, int], str | None]:
        """Step id -> 0-based position, and the sequence title, from `GET /v1/sequences/{id}`."""
        where = f"sequence {sequence.id}, steps"
        doc = await self._client.get_json(path, where=where)
        data = require_object(doc, source=self.name, where=where).get("data")
        if not isinstance(data, Mapping):
            raise MalformedResponse(
                "field 'data' is missing or not an object", source=self.name, where=where
            )
        steps: dict[str, int] = {}
        for index, step in enumerate(require_list(data, "steps", source=self.name, where=where)):
            at = f"{where}, step {index}"
            position = step.get("position")
            if isinstance(position, bool) or not isinstance(position, int) or position < 0:
                raise MalformedResponse(
                    "field 'position' is missing or not a non-negative integer",
                    source=self.name,
                    where=at,
                )
            steps[require_id(step, "id", source=self.name, where=at)] = position
        return steps, _title(data, source=self.name, where=where)


class _Contact:
    """One contact's rows within one sequence, deduplicated by row id (overlapping pages)."""

    __slots__ = ("contact", "rows")

    def __init__(self, contact: Mapping[str, Any]) -> None:
        self.contact = contact
        self.rows: dict[object, dict[str, Any]] = {}

    def add(self, contact: Mapping[str, Any], row: Mapping[str, Any]) -> None:
        self.contact = contact  # the later page is the fresher copy
        row_id = row.get("id")
        key: object = row_id if isinstance(row_id, str | int) else len(self.rows)
        self.rows[key] = {k: row[k] for k in ROW_FIELDS if k in row}


class _OffsetPager:
    """limit/offset paging that only ends at `total` (or, without one, at a short page).

    A page shorter than asked before `total` is not the end (the API may cap `limit`). When
    `total` shrinks mid-listing, rows deleted before our offset have shifted later rows back
    past it, so the pager steps back over them; the rows read twice fold harmlessly.
    """

    __slots__ = ("_client", "_max_pages", "_page_size", "_source")

    def __init__(
        self, client: ProviderClient, *, source: str, page_size: int, max_pages: int
    ) -> None:
        self._client = client
        self._source = source
        self._page_size = page_size
        self._max_pages = max_pages

    async def pages(
        self, path: str, *, label: str
    ) -> AsyncGenerator[tuple[list[Mapping[str, Any]], str]]:
        guard = PageGuard(self._max_pages, source=self._source)
        offset, total = 0, None
        while True:
            where = f"{label} page {guard.pages + 1} (offset={offset})"
            guard.advance((offset, total), where=where)  # a rewind comes with a smaller total
            items, page_total, limit = await self._fetch(path, offset=offset, where=where)
            self._check(items, page_total, limit=limit, offset=offset, where=where)
            if items:
                guard.received(_fingerprint(items), where=where)
            yield items, where
            if page_total is None:
                if len(items) < limit:
                    return
                offset += len(items)
                continue
            shrunk = 0 if total is None else max(0, total - page_total)
            total = page_total
            if shrunk:
                offset = max(0, offset - shrunk)
                continue
            offset += len(items)
            if offset >= total:
                return

    async def _fetch(
        self, path: str, *, offset: int, where: str
    ) -> tuple[list[Mapping[str, Any]], int | None, int]:
        limit = self._page_size
        try:
            doc = await self._get(path, limit=limit, offset=offset, where=where)
        except SourceRejected as exc:
            # The 500 maximum is documented for one endpoint only: if a 4xx validation
            # answer refuses it, use the smaller page size for the rest of this source's life.
            if limit <= FALLBACK_PAGE_SIZE or not _validation_refusal(exc):
                raise
            _log.warning(
                "whippy_page_size_fallback",
                source=self._source,
                where=where,
                page_size=FALLBACK_PAGE_SIZE,
            )
            self._page_size = limit = FALLBACK_PAGE_SIZE
            doc = await self._get(path, limit=limit, offset=offset, where=where)
        items, page_total = _envelope(doc, source=self._source, where=where)
        return items, page_total, limit

    async def _get(self, path: str, *, limit: int, offset: int, where: str) -> Any:
        params = {"limit": limit, "offset": offset}
        return await self._client.get_json(path, params=params, where=where)

    def _check(
        self,
        items: list[Mapping[str, Any]],
        total: int | None,
        *,
        limit: int,
        offset: int,
        where: str,
    ) -> None:
        problem = None
        if len(items) > limit:
            problem = f"page has {len(items)} records, more than limit={limit}"
        elif total is not None and not items and offset < total:
            problem = f"empty page before the end (field 'total' is {total})"
        elif total is not None and offset + len(items) > total:
            problem = f"page runs past field 'total' ({total})"
        if problem is not None:
            raise MalformedResponse(problem, source=self._source, where=where)


def _envelope(doc: Any, *, source: str, where: str) -> tuple[list[Mapping[str, Any]], int | None]:
    """`data` and `total` (None when the envelope has no count)."""
    obj = require_object(doc, source=source, where=where)
    items = require_list(obj, "data", source=source, where=where)
    total = obj.get("total")
    if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 0):
        raise MalformedResponse(
            "field 'total' is not a non-negative integer", source=source, where=where
        )
    return items, total


def _validation_refusal(exc: SourceRejected) -> bool:
    return exc.http_status in (400, 422)


def _fingerprint(items: list[Mapping[str, Any]]) -> tuple[int, str, str]:
    """Enough to tell a page served twice from the next one."""

    def key(item: Mapping[str, Any]) -> str:
        contact = item.get("contact")
        contact_id = contact.get("id") if isinstance(contact, Mapping) else None
        return f"{item.get('id')}|{contact_id}"

    return len(items), key(items[0]), key(items[-1])


def _title(item: Mapping[str, Any], *, source: str, where: str) -> str | None:
    return optional_str(item, "title", source=source, where=where) if "title" in item else None


def error_text(doc: Any) -> str | None:
    """Whippy's `{"errors": [{"description": ...}], "status": 401}` as one line; also the
    Phoenix default `{"errors": {"detail": ...}}` its framework answers unrouted paths with."""
    errors = doc.get("errors") if isinstance(doc, dict) else None
    said: list[str] = []
    if isinstance(errors, list):
        for error in errors:
            if not isinstance(error, dict) or not isinstance(error.get("description"), str):
                continue
            field = error.get("field")
            prefix = f"{field}: " if isinstance(field, str) and field else ""
            said.append(prefix + error["description"])
    elif isinstance(errors, dict):
        for key, value in errors.items():
            texts = [value] if isinstance(value, str) else value if isinstance(value, list) else []
            text = ", ".join(t for t in texts if isinstance(t, str))
            if text:
                said.append(text if key == "detail" else f"{key}: {text}")
    return "; ".join(said) if said else generic_error_text(doc)


def build(params: SourceParams) -> WhippySource:
    client = client_for(
        params,
        default_base_url=DEFAULT_BASE_URL,
        requests_per_second=REQUESTS_PER_SECOND,
        headers={AUTH_HEADER: params.api_key},
        retry_after_ms_header=RETRY_MS_HEADER,
        describe_error=error_text,
    )
    return WhippySource(name=params.name, client=client, sequences=params.sequences)
