"""A synthetic Reply.io v4 account, generated deterministically from (size, seed, cycle).

Pure: the fake provider process renders it into pages, and the orchestrator derives the
expected figures (minimum requests, events) from the same object, so "1% changed" is exact.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

PAGE_SIZE = 1000  # Reply.io's largest `top`: the fewest requests per listing
API_KEY = "bench-api-key"  # the fake accepts any key
# A key "<ACCOUNT_KEY_PREFIX><k>" is the account of sequence k alone: its listing shows one
# sequence (many sources as many customer accounts, not as many views of one account).
ACCOUNT_KEY_PREFIX = "bench-account-"
FIRST_SEQUENCE_ID = 5000
_FIRST = ("Ada", "Ben", "Cleo", "Dev", "Eva", "Finn", "Gia", "Hugo")
_LAST = ("Ortiz", "Nguyen", "Smith", "Kowalski", "Haddad", "Ito", "Mensah", "Rossi")
_COMPANIES = tuple(f"{a} {b}" for a in ("Acme", "Globex", "Initech", "Umbrella") for b in "ABCD")
_TITLES = ("CTO", "VP Sales", "Head of Ops", None)
_ADDED = "2024-03-08T10:00:00+00:00"
_NEXT_SEND = "2024-03-09T10:00:00+00:00"
_ID_SPACE = 90_000_000  # contact ids are a permutation of this range (48271 is coprime to it)


class Cycle(StrEnum):
    BASELINE = "baseline"
    UNCHANGED = "unchanged"  # the baseline data again
    CHANGED = "changed"  # the baseline data with exactly 1% of enrollments changed


class Change(StrEnum):
    """Each change yields exactly one event, whatever the record's base status."""

    STEP = "step"  # currentStep + 1: step_advanced
    STATUS = "status"  # Active->Paused, Paused->Active, Finished->Active: one status event
    OPT_OUT = "opt_out"  # isOptedOut turns true: opted_out


def _mix(index: int, seed: int) -> int:
    """A cheap 32-bit hash so attributes look random but are a pure function of the index."""
    x = (index * 0x9E3779B1 + seed * 0x85EBCA77 + 0x165667B1) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x2C1B3C6D) & 0xFFFFFFFF
    x ^= x >> 12
    return x


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    enrollments: int
    seed: int = 1
    per_sequence: int = 10_000

    def __post_init__(self) -> None:
        if self.enrollments < 1 or self.per_sequence < 1:
            raise ValueError("enrollments and per_sequence must be positive")
        if self.enrollments > _ID_SPACE:
            raise ValueError(f"at most {_ID_SPACE} enrollments")

    @property
    def sequences(self) -> int:
        return math.ceil(self.enrollments / self.per_sequence)

    @property
    def changed_count(self) -> int:
        return self.enrollments // 100

    def sequence_id(self, k: int) -> int:
        return FIRST_SEQUENCE_ID + k

    def sequence_size(self, k: int) -> int:
        return min(self.per_sequence, self.enrollments - k * self.per_sequence)

    def minimum_requests(self) -> int:
        """One listing at the largest page size: sequence pages plus contact pages."""
        contacts = sum(
            max(1, math.ceil(self.sequence_size(k) / PAGE_SIZE)) for k in range(self.sequences)
        )
        return max(1, math.ceil(self.sequences / PAGE_SIZE)) + contacts

    def changes(self, cycle: Cycle) -> dict[int, Change]:
        """Enrollment index -> its change in `cycle` (exactly `changed_count` for CHANGED)."""
        if cycle is not Cycle.CHANGED:
            return {}
        rng = random.Random(f"seqwatch-bench:{self.seed}:{self.enrollments}")
        chosen = rng.sample(range(self.enrollments), self.changed_count)
        kinds = (Change.STEP,) * 7 + (Change.STATUS,) * 2 + (Change.OPT_OUT,)
        return {index: kinds[j % len(kinds)] for j, index in enumerate(chosen)}

    def record(self, index: int, change: Change | None = None) -> dict[str, Any]:
        """Contact `index` as Reply.io v4 lists it in its sequence (the fake's field set)."""
        h = _mix(index, self.seed)
        first, last = _FIRST[h & 7], _LAST[(h >> 3) & 7]
        contact_id = 10_000_000 + (index * 48_271 + self.seed) % _ID_SPACE
        roll = (h >> 6) % 100
        status = "Active" if roll < 85 else ("Paused" if roll < 95 else "Finished")
        step = 1 + (h >> 13) % 5
        opted_out = False
        if change is Change.STEP:
            step += 1
        elif change is Change.STATUS:
            status = "Paused" if status == "Active" else "Active"
        elif change is Change.OPT_OUT:
            opted_out = True
        company = _COMPANIES[(h >> 16) % len(_COMPANIES)]
        domain = company.split()[0].lower()
        return {
            "contactId": contact_id,
            "sequenceId": self.sequence_id(index // self.per_sequence),
            "email": f"{first.lower()}.{last.lower()}.{contact_id}@{domain}.example",
            "firstName": first,
            "lastName": last,
            "company": company,
            "title": _TITLES[(h >> 20) & 3],
            "status": status,
            "subStatus": "None",
            "currentStep": step,
            "addingDate": _ADDED,
            "movingDate": None,
            "nextSendAfter": _NEXT_SEND if status == "Active" else None,
            "isOptedOut": opted_out,
            "emailAccountId": 101,
            "linkedInAccountId": None,
            "icpScore": None,
        }

    def sequences_page(self, *, skip: int, top: int) -> bytes:
        items = [
            {
                "id": self.sequence_id(k),
                "ownerUserId": 1,
                "name": f"Bench sequence {k + 1}",
                "status": "Active",
                "created": _ADDED,
                "isArchived": False,
            }
            for k in range(skip, min(self.sequences, skip + top))
        ]
        return orjson.dumps({"items": items, "hasMore": skip + top < self.sequences})

    def own_sequence_page(self, k: int) -> bytes:
        """The sequence listing of an account holding sequence k alone."""
        item = orjson.loads(self.sequences_page(skip=k, top=1))["items"]
        return orjson.dumps({"items": item, "hasMore": False})

    def contacts_page(
        self, k: int, *, skip: int, top: int, changes: dict[int, Change] | None = None
    ) -> bytes:
        """One page of sequence `k` (0-based); an unknown sequence lists nothing, as Reply does."""
        size = self.sequence_size(k) if 0 <= k < self.sequences else 0
        start = k * self.per_sequence
        found = changes or {}
        items = [
            self.record(i, found.get(i)) for i in range(start + skip, start + min(size, skip + top))
        ]
        return orjson.dumps({"items": items, "hasMore": skip + top < size})

    def contact_pages(self, cycle: Cycle) -> Iterator[tuple[int, int, bytes]]:
        """(sequence id, skip, body) of every contact page at the largest page size."""
        changes = self.changes(cycle)
        for k in range(self.sequences):
            for skip in range(0, max(1, self.sequence_size(k)), PAGE_SIZE):
                body = self.contacts_page(k, skip=skip, top=PAGE_SIZE, changes=changes)
                yield self.sequence_id(k), skip, body
