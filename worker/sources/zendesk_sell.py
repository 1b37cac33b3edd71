"""Zendesk Sell (Reach): stream every sequence enrollment of the account (page/per_page).

Sell has no updated-since filter, so every poll is a full listing. Records are unwrapped from
the `{data, meta}` envelope; the nested `sequence` keeps its own envelope for the normalizer.

When the listing ends is [inferred] beyond the vendor's Zapier app (keep paging while
`meta.links.next_page` is present, stop on a page shorter than `per_page`):
- a short page ends the listing;
- a full page ends it only when the server says so (`next_page: null`); when `next_page` is
  absent the next page is asked for (an empty answer then ends it), so a server that never
  sends links is still listed completely, at the cost of one request when the count is an
  exact multiple of the page size;
- an empty page whose `next_page` is set is malformed: it cannot be told from a truncation;
- without any `meta.links` (the official fixture) an empty page after a full one ends the
  listing only when a second request for it is empty too.
The link's absolute URL is never followed (it names the vendor host, and would carry our
token there): only its `page` number is read. The official fixture has no `meta.links` at all.
The enrollments are asked for in a stable order (`sort_by=id:asc`), so an enrollment added
while a listing runs lands at the end instead of shifting earlier pages.

Contact fields (`contacts`, the pipeline's optional ContactLookup hook): an enrollment names
its lead or contact by `resource_type`/`resource_id`. They are fetched in batches of up to 100
ids, `GET /v2/leads?ids=...` and `GET /v2/contacts?ids=...` (the usual envelope), plus one
`GET /v2/contacts?ids=` for the organisations of person contacts (`contact_id`), whose name is
the person's company. Lead: `first_name` + `last_name`, `email`, `organization_name`
[vendor-code: zendesk/zendesk-sell-for-zapier src/lead/__test__/multipleLeads.fixture.json].
Contact: `name` (else `first_name` + `last_name`), `email`, and the company is its own `name`
when `is_organization`, else an `organization_name` if the record has one [3p-code:
activepieces zendesk-sell common.ts], else its organisation's [vendor-code: zendesk/basecrm-python
basecrm/test/testutils.py create_contact; zendesk-sell-for-zapier
src/contact/__test__/multipleContacts.fixture.json]. Each request is tried once: a failure
costs the labels (logged), never the events.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import structlog

from worker.enrollment import Contact
from worker.errors import MalformedResponse, SourceError
from worker.sources.base import RawPage
from worker.sources.http import ProviderClient, client_for, generic_error_text
from worker.sources.pagination import (
    PageGuard,
    allow_list,
    check_page_size,
    require_list,
    require_object,
)
from worker.sources.params import ProviderInfo
from worker.sources.shared_limiter import Quota

if TYPE_CHECKING:
    from worker.sources.params import SourceParams

DEFAULT_BASE_URL = "https://api.getbase.com"
REQUESTS_PER_SECOND = 10.0  # 36,000/hour per token; no rate headers, just 429
AUTH_HEADER = "Authorization"
MAX_PAGE_SIZE = 100
SEQUENCE_NAMES = "sequence_names"  # RawPage.extra key: {sequence id: name} from /v2/sequences
LOOKUP_BATCH = 100  # ids per leads/contacts request (the collections' page limit)
_ENROLLMENTS = "/v2/sequence_enrollments"
_SEQUENCES = "/v2/sequences"
_PEOPLE = {"lead": "/v2/leads", "contact": "/v2/contacts"}
_ORDER = {"sort_by": "id:asc"}
_log = structlog.get_logger(__name__)


def nested(record: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    """A nested resource: `{data: {...}, meta}` as Sell sends it, or a bare object."""
    value = record.get(key)
    if not isinstance(value, Mapping):
        return None
    data = value.get("data")
    return data if isinstance(data, Mapping) else value


class ZendeskSellSource:
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
        self._allow = frozenset(allow_list(sequences))
        self._page_size = page_size
        self._max_pages = max_pages

    def __repr__(self) -> str:
        return f"ZendeskSellSource(name={self.name!r})"

    @property
    def incremental(self) -> bool:
        return False

    async def pages(self, *, updated_after: str | None = None) -> AsyncIterator[RawPage]:
        # `updated_after` is ignored: a full listing is a superset of any incremental one.
        names: Mapping[str, str] | None = None  # fetched once, only if a record lacks a name
        async for records, where in self._listing(_ENROLLMENTS, self._page_size, order=_ORDER):
            kept = self._wanted(records, where=where) if self._allow else records
            if names is None and any(_unnamed(r) for r in kept):
                names = await self._sequence_names()
            extra = {SEQUENCE_NAMES: names} if names else {}
            yield RawPage(records=kept, where=where, extra=extra)

    async def check(self) -> None:
        where = "credentials check"
        doc = await self._client.get_json(_ENROLLMENTS, params={"per_page": 1}, where=where)
        self._envelope(doc, page=1, page_size=1, where=where)

    def _wanted(self, records: list[Mapping[str, Any]], *, where: str) -> list[Mapping[str, Any]]:
        """The records of allow-listed sequences (Sell has no documented sequence filter)."""
        kept = []
        for index, record in enumerate(records):
            sequence_id = _sequence_id(record)
            if sequence_id is None:
                # Without the id the allow-list cannot be applied; guessing would drop or leak.
                raise MalformedResponse(
                    f"field 'items'[{index}].data.sequence.data.id is missing or not an id",
                    source=self.name,
                    where=where,
                )
            if sequence_id in self._allow:
                kept.append(record)
        return kept

    async def _sequence_names(self) -> Mapping[str, str]:
        """Names from GET /v2/sequences. They only label events: a failure costs the labels."""
        found: dict[str, str] = {}
        try:
            async for records, _ in self._listing(_SEQUENCES, MAX_PAGE_SIZE, ids=self._allow):
                for record in records:
                    sequence_id, name = record.get("id"), record.get("name")
                    if isinstance(sequence_id, int | str) and isinstance(name, str):
                        found[str(sequence_id)] = name
        except SourceError as exc:
            _log.warning("sequence_names_unavailable", source=self.name, error=exc.detail)
        return found

    async def contacts(self, wanted: Collection[Contact]) -> Mapping[Contact, Contact]:
        """Name, email and company of the given leads and contacts (by `type` and `id`)."""
        found: dict[tuple[str, str], Contact] = {}
        organizations: dict[tuple[str, str], str] = {}  # person contact -> its organisation id
        for kind, path in _PEOPLE.items():
            ids = {c.id for c in wanted if c.type == kind and c.id and c.id.isdigit()}
            for record in await self._lookup(path, ids, label=f"{kind}s"):
                contact, organization = _person(record, kind)
                if contact is not None and contact.id is not None:
                    found[(kind, contact.id)] = contact
                    if organization is not None:
                        organizations[(kind, contact.id)] = organization
        if organizations:
            names = {
                str(r.get("id")): name
                for r in await self._lookup(
                    _PEOPLE["contact"], set(organizations.values()), label="organisations"
                )
                if isinstance(name := r.get("name"), str) and name
            }
            for key, organization in organizations.items():
                if organization in names:
                    found[key] = dataclasses.replace(found[key], company=names[organization])
        return {c: found[(c.type or "", c.id or "")] for c in wanted if (c.type, c.id) in found}

    async def _lookup(self, path: str, ids: set[str], *, label: str) -> list[Mapping[str, Any]]:
        """The records of `ids`, in batches; a failed batch is logged and skipped."""
        records: list[Mapping[str, Any]] = []
        ordered = sorted(ids, key=int)
        for start in range(0, len(ordered), LOOKUP_BATCH):
            batch = ordered[start : start + LOOKUP_BATCH]
            where = f"{label} lookup"
            params: dict[str, str | int] = {"ids": ",".join(batch), "per_page": LOOKUP_BATCH}
            try:
                doc = await self._client.get_json(path, params=params, where=where, attempts=1)
                obj = require_object(doc, source=self.name, where=where)
                items = require_list(obj, "items", source=self.name, where=where)
            except SourceError as exc:
                _log.warning("contact_lookup_failed", source=self.name, error=exc.detail)
                continue
            for item in items:
                data = item.get("data") if isinstance(item, Mapping) else None
                if isinstance(data, Mapping):
                    records.append(data)
        return records

    async def _listing(
        self,
        path: str,
        page_size: int,
        *,
        ids: frozenset[str] = frozenset(),
        order: Mapping[str, str] | None = None,
    ) -> AsyncIterator[tuple[list[Mapping[str, Any]], str]]:
        label = path.rsplit("/", 1)[-1].replace("_", " ")
        guard = PageGuard(self._max_pages, source=self.name)
        number: int | None = 1
        while number is not None:
            where = f"{label} page {number}"
            guard.advance(number, where=where)
            params: dict[str, str | int] = {"page": number, "per_page": page_size, **(order or {})}
            if ids:
                params["ids"] = ",".join(sorted(ids))
            doc = await self._client.get_json(path, params=params, where=where)
            records, after = self._envelope(doc, page=number, page_size=page_size, where=where)
            if not records and number > 1 and not _has_links(doc):
                # Without links an empty page is the only "end" after a full one, and a
                # glitch looks the same: believe it only when asked twice (one request).
                doc = await self._client.get_json(path, params=params, where=where)
                records, after = self._envelope(doc, page=number, page_size=page_size, where=where)
            if records:
                guard.received((records[0].get("id"), records[-1].get("id")), where=where)
            yield records, where
            number = after

    def _envelope(
        self, doc: Any, *, page: int, page_size: int, where: str
    ) -> tuple[list[Mapping[str, Any]], int | None]:
        """The page's records (unwrapped from `data`) and the next page number, or None."""
        obj = require_object(doc, source=self.name, where=where)
        items = require_list(obj, "items", source=self.name, where=where)
        records: list[Mapping[str, Any]] = []
        for index, item in enumerate(items):
            data = item.get("data")
            if not isinstance(data, Mapping):
                raise MalformedResponse(
                    f"field 'items'[{index}].data is missing or not an object",
                    source=self.name,
                    where=where,
                )
            records.append(data)
        after = self._next_page(obj, page=page, count=len(records), size=page_size, where=where)
        return records, after

    def _next_page(
        self, obj: Mapping[str, Any], *, page: int, count: int, size: int, where: str
    ) -> int | None:
        meta = obj.get("meta")
        if not isinstance(meta, Mapping):
            raise MalformedResponse(
                "field 'meta' is missing or not an object", source=self.name, where=where
            )
        links = meta.get("links", {})
        if not isinstance(links, Mapping):
            raise MalformedResponse(
                "field 'meta.links' is not an object", source=self.name, where=where
            )
        link = links.get("next_page")
        if link is not None and not isinstance(link, str):
            raise MalformedResponse(
                "field 'meta.links.next_page' is not a URL", source=self.name, where=where
            )
        if link and count == 0:
            raise MalformedResponse(
                "field 'meta.links.next_page' is set but 'items' is empty",
                source=self.name,
                where=where,
            )
        if count < size or ("next_page" in links and not link):
            return None  # a short page, or the server says this was the last one
        target = _page_number(link) if link else None
        if target is None or target == page + 1:
            return page + 1
        if target <= page:
            problem = "pagination loop: 'meta.links.next_page' points back to"
        else:
            problem = "field 'meta.links.next_page' skips to"
        raise MalformedResponse(f"{problem} page {target}", source=self.name, where=where)


def _text(record: Mapping[str, Any], field: str) -> str | None:
    """A string field; anything else (or "") is unknown rather than an error: labels only."""
    value = record.get(field)
    return value.strip() or None if isinstance(value, str) else None


def _person(record: Mapping[str, Any], kind: str) -> tuple[Contact | None, str | None]:
    """A lead or contact record as a Contact, and a person contact's organisation id."""
    record_id = record.get("id")
    if isinstance(record_id, bool) or not isinstance(record_id, int | str) or record_id == "":
        return None, None
    full = " ".join(p for p in (_text(record, "first_name"), _text(record, "last_name")) if p)
    organization: str | None = None
    if kind == "lead":
        name, company = full or None, _text(record, "organization_name")
    else:
        name = _text(record, "name") or full or None
        is_org = record.get("is_organization") is True
        # Some clients show an `organization_name` on contacts too: free, so used when there.
        company = name if is_org else _text(record, "organization_name")
        parent = record.get("contact_id")
        if company is None and isinstance(parent, int) and not isinstance(parent, bool):
            organization = str(parent)
    contact = Contact(
        id=str(record_id), type=kind, name=name, email=_text(record, "email"), company=company
    )
    return contact, organization


def _has_links(doc: Any) -> bool:
    meta = doc.get("meta") if isinstance(doc, Mapping) else None
    return isinstance(meta, Mapping) and isinstance(meta.get("links"), Mapping)


def _page_number(link: str) -> int | None:
    values = parse_qs(urlsplit(link).query).get("page")
    return int(values[-1]) if values and values[-1].isdigit() else None


def _sequence_id(record: Mapping[str, Any]) -> str | None:
    sequence = nested(record, "sequence")
    value = sequence.get("id") if sequence is not None else record.get("sequence_id")
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        return None
    return str(value)


def _unnamed(record: Mapping[str, Any]) -> bool:
    sequence = nested(record, "sequence")
    return sequence is None or not isinstance(sequence.get("name"), str)


def error_text(doc: Any, *, secrets: Sequence[str] = ()) -> str | None:
    """`code: message (details)` from Sell's `{errors: [{error: {code, message, details}}]}`.

    Sell's 429 may carry some other body: then the generic reading applies. `secrets` (the
    bare token, which the client's own scrubbing only knows as "Bearer <token>") are redacted.
    """
    errors = doc.get("errors") if isinstance(doc, Mapping) else None
    first = errors[0] if isinstance(errors, list) and errors else None
    error = first.get("error") if isinstance(first, Mapping) else None
    if not isinstance(error, Mapping):
        text = generic_error_text(doc)
    else:
        parts = [error.get(k) for k in ("code", "message")]
        text = ": ".join(p for p in parts if isinstance(p, str) and p)
        details = error.get("details")
        if isinstance(details, str) and details and details != error.get("message"):
            text = f"{text} ({details})" if text else details
        field = error.get("field")
        if isinstance(field, str) and field:
            text = f"{text} [field {field}]"
        if len(errors or ()) > 1:
            text = f"{text} (+{len(errors or ()) - 1} more)"
    for secret in secrets:
        if text and secret:
            text = text.replace(secret, "[redacted]")
    return text or None


def build(params: SourceParams) -> ZendeskSellSource:
    token = params.api_key
    client = client_for(
        params,
        default_base_url=DEFAULT_BASE_URL,
        requests_per_second=REQUESTS_PER_SECOND,
        headers={AUTH_HEADER: f"Bearer {token}"},
        describe_error=lambda doc: error_text(doc, secrets=(token,)),
    )
    return ZendeskSellSource(name=params.name, client=client, sequences=params.sequences)


PROVIDER = ProviderInfo(
    slug="zendesk_sell",
    default_base_url=DEFAULT_BASE_URL,
    requests_per_second=REQUESTS_PER_SECOND,
    incremental=False,
    build=build,
    quotas=(Quota(requests=10, per_seconds=1), Quota(requests=36_000, per_seconds=3600)),
)
