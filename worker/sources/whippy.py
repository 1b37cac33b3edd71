"""Whippy: list the sequences, then fold each one's step-contact rows into enrollments.

`GET /v1/sequences/{id}/contacts` (limit/offset, `{data, total}`) lists one row per step a
contact reached, and one contact's rows may fall on different pages. So the rows of ONE
sequence are folded by contact id in memory (bounded by the largest sequence, never the
account) and each sequence is yielded as ONE RawPage whose records are folded contacts:

    {
      "sequence_id": "<uuid>",
      "contact": {"id": ..., "name": ..., "email": ..., "phone": ...},  # as last seen
      "rows": [{"id", "status", "step_id", "created_at", "updated_at",
                "unsubscribed"}, ...],  # every row of the contact, deduplicated by row id;
                                        # absent keys stay absent
      "responded": <bool>,  # a row of the contact is in the `responded=true` listing
      "steps": {"<step id>": <0-based position>, ...},  # one dict shared by the whole page
    }

`responded` is not a row field in any vendor material: it is the documented `responded=true`
filter of the same listing, read once per sequence that has contacts (usually one request:
500 rows a page). Steps come from `GET /v1/sequences/{id}`, read after the rows so steps added
meanwhile are known, and only for a sequence that has contacts. Requests per poll:
ceil(sequences/500) + for each sequence ceil(rows/500), plus, when it has rows,
1 for its steps and ceil(responded rows/500) (at least 1) for replies. There is no
updated-since filter, so every poll is a full listing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any
from urllib.parse import quote

import structlog

from worker.enrollment import SequenceRef
from worker.errors import MalformedResponse
from worker.sources.base import RawPage
from worker.sources.http import ProviderClient, client_for, generic_error_text
from worker.sources.pagination import (
    allow_list,
    optional_str,
    require_id,
    require_list,
    require_object,
)
from worker.sources.paging import OffsetPager, OffsetPaging
from worker.sources.params import ProviderInfo, SourceParams
from worker.sources.shared_limiter import Quota

DEFAULT_BASE_URL = "https://api.whippy.co"
REQUESTS_PER_SECOND = 20.0  # documented 25 req/s per key and per organization: keep headroom
AUTH_HEADER = "X-WHIPPY-KEY"
RETRY_MS_HEADER = "X-RateLimit-Remaining-Interval-Milliseconds"
MAX_PAGE_SIZE = 500  # documented for contact-sequences; the list endpoints are not documented
FALLBACK_PAGE_SIZE = 100  # what an unofficial client clamps to, should 500 be refused
# The only row fields the normalizer reads: messages and bodies are not kept in memory.
ROW_FIELDS = ("id", "status", "step_id", "created_at", "updated_at", "unsubscribed")
PAGING = OffsetPaging(
    limit_param="limit", offset_param="offset", items_key="data", max_page_size=MAX_PAGE_SIZE,
    end="total", fallback_page_size=FALLBACK_PAGE_SIZE,
)  # fmt: skip
RESPONDED = {"responded": "true"}  # the documented filter: rows of contacts who responded
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
        self.name = name
        self._client = client
        self._allow = allow_list(sequences)
        self._pager = OffsetPager(
            client, PAGING, source=name, page_size=page_size, max_pages=max_pages,
            item_key=_item_key,
        )  # fmt: skip

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
        self._pager.envelope(doc, where=where)

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
        # Rows naming no readable contact cannot be folded, and some contact's other rows may then
        # fold into a state it never had: the sequence's contacts are left as stored this poll,
        # and only those rows are passed on, which the normalizer quarantines as records whose id
        # is unreadable (so the listing is incomplete and removes nothing).
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
        if unfoldable:
            orphans = [
                {"sequence_id": sequence.id, "contact": None, "rows": [r]} for r in unfoldable
            ]
            return RawPage(records=orphans, where=f"{label} ({pages} pages)", sequence=sequence)
        if not folded:  # nothing to label or reply to: spare the steps and replies requests
            return RawPage(records=[], where=f"{label} ({pages} pages)", sequence=sequence)
        responded = await self._responded(path, sequence)
        steps, title = await self._steps(path, sequence)
        shared = {"steps": steps}
        records = [
            {
                "sequence_id": sequence.id,
                "contact": c.contact,
                "rows": list(c.rows.values()),
                "responded": contact_id in responded,
            }
            | shared
            for contact_id, c in folded.items()
        ]
        return RawPage(
            records=records,
            where=f"sequence {sequence.id}, contacts ({pages} pages)",
            sequence=SequenceRef(id=sequence.id, name=title or sequence.name),
        )

    async def _responded(self, path: str, sequence: SequenceRef) -> set[str]:
        """Ids of the contacts the documented `responded=true` filter lists."""
        label = f"sequence {sequence.id}, responded contacts"
        found: set[str] = set()
        listing = self._pager.pages(f"{path}/contacts", label=label, params=RESPONDED)
        async with aclosing(listing) as pages:
            async for rows, where in pages:
                for index, row in enumerate(rows):
                    found.add(self._contact(row, where=f"{where}, record {index}")[1])
        return found

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


def _item_key(item: Mapping[str, Any]) -> str:
    contact = item.get("contact")
    contact_id = contact.get("id") if isinstance(contact, Mapping) else None
    return f"{item.get('id')}|{contact_id}"


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


PROVIDER = ProviderInfo(
    slug="whippy",
    default_base_url=DEFAULT_BASE_URL,
    requests_per_second=REQUESTS_PER_SECOND,
    incremental=False,
    build=build,
    quotas=(Quota(requests=20, per_seconds=1),),  # under the documented 25/s
)
