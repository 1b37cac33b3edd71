"""Contact fields looked up from the provider for the enrollments that may produce events.

Only for sources that implement `ContactLookup` (Zendesk Sell names each enrollment's lead or
contact by id). Before a page is committed, the enrollments whose stored state changed (the
only ones that can produce events) get their contact's fields from a small Redis cache, and
the source is asked, in one batched call, for the ones the cache lacks. A failed lookup never
holds an event back: the event carries what is known (nulls otherwise) and a log line says so.
The silent baseline looks nothing up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping

import structlog
from redis.asyncio import Redis

from worker.enrollment import Contact, Enrollment
from worker.sources.base import ContactLookup
from worker.store import keys

# Names and emails change rarely; a day bounds how long a rename takes to show.
CACHE_TTL_S = 86_400
_SEP = "\x1f"
_log = structlog.get_logger(__name__)


def _encode(contact: Contact) -> str:
    return _SEP.join((contact.name or "", contact.email or "", contact.company or ""))


def _decode(ref: Contact, value: str) -> Contact:
    name, email, company = [*value.split(_SEP), "", ""][:3]
    return dataclasses.replace(ref, name=name or None, email=email or None, company=company or None)


class ContactCache:
    """One short string per looked-up (type, id), expiring after CACHE_TTL_S."""

    def __init__(self, redis: Redis, *, source: str, ttl_s: int = CACHE_TTL_S) -> None:
        self._redis = redis
        self._source = source
        self._ttl_s = ttl_s

    def _key(self, ref: Contact) -> str:
        return keys.contact(self._source, ref.type or "", ref.id or "")

    async def get(self, refs: Collection[Contact]) -> dict[Contact, Contact]:
        ordered = list(refs)
        if not ordered:
            return {}
        values = await self._redis.mget([self._key(r) for r in ordered])
        found: dict[Contact, Contact] = {}
        for ref, value in zip(ordered, values, strict=True):
            if value is not None:
                text = value.decode() if isinstance(value, bytes) else str(value)
                found[ref] = _decode(ref, text)
        return found

    async def put(self, contacts: Collection[Contact]) -> None:
        if not contacts:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for contact in contacts:
                pipe.set(self._key(contact), _encode(contact), ex=self._ttl_s)
            await pipe.execute()


def _ref(contact: Contact) -> Contact | None:
    """What identifies a contact for a lookup: id and type, nothing else."""
    if contact.id is None:
        return None
    return Contact(id=contact.id, type=contact.type)


async def with_contacts(
    redis: Redis,
    source: ContactLookup,
    *,
    name: str,
    current: Mapping[str, Enrollment],
    quiet: Collection[str],
) -> dict[str, Enrollment]:
    """`current` with looked-up contact fields on the enrollments whose state changed (not
    those the store found `quiet`: stored with the same state, no news)."""
    if not current:
        return dict(current)
    changed = {
        enrollment_id: ref
        for enrollment_id, enrollment in current.items()
        if (ref := _ref(enrollment.contact)) is not None and enrollment_id not in quiet
    }
    if not changed:
        return dict(current)
    cache = ContactCache(redis, source=name)
    refs = set(changed.values())
    known = await cache.get(refs)
    missing = refs - known.keys()
    if missing:
        try:
            fetched = await source.contacts(missing)
        except Exception as exc:  # a broken lookup must not cost the events their commit
            _log.warning("contact_lookup_failed", source=name, error=type(exc).__name__)
            fetched = {}
        looked_up = {ref: fetched[ref] for ref in missing if ref in fetched}
        await cache.put(list(looked_up.values()))
        known.update(looked_up)
        unknown = len(missing) - len(looked_up)
        if unknown:
            _log.warning("contacts_unknown", source=name, count=unknown)
    out = dict(current)
    for enrollment_id, ref in changed.items():
        found = known.get(ref)
        if found is not None:
            out[enrollment_id] = dataclasses.replace(current[enrollment_id], contact=found)
    return out
