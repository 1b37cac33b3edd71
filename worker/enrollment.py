"""Normalized enrollment state: what the diff compares and what events carry."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    PAUSED = "paused"
    BLOCKED = "blocked"
    FINISHED = "finished"
    REMOVED = "removed"


@dataclass(frozen=True, slots=True, kw_only=True)
class State:
    """The fields the diff looks at (SPEC §5). None means the provider does not expose it."""

    status: Status
    raw_status: str
    step: int | None = None
    step_id: str | None = None
    replied: bool | None = None
    bounced: bool | None = None
    opted_out: bool | None = None
    # Provider's own explanation of the state where it gives one (Zendesk Sell finished_reason).
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        fields = {
            "status": self.status.value,
            "raw_status": self.raw_status,
            "step": self.step,
            "step_id": self.step_id,
            "replied": self.replied,
            "bounced": self.bounced,
            "opted_out": self.opted_out,
        }
        if self.reason is not None:
            fields["reason"] = self.reason  # only where a provider has one: the SPEC keys stay
        return fields


@dataclass(frozen=True, slots=True, kw_only=True)
class SequenceRef:
    id: str
    name: str | None = None
    # How many steps the sequence has, where the provider says (Zendesk Sell, Whippy). It only
    # describes: never stored, never part of the diff or of an event id.
    steps_total: int | None = None

    def as_dict(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"id": self.id, "name": self.name}
        if self.steps_total is not None:
            fields["steps_total"] = self.steps_total  # only where known: the SPEC keys stay
        return fields


@dataclass(frozen=True, slots=True, kw_only=True)
class Contact:
    """Unknown fields stay None; they are never invented."""

    id: str | None = None
    email: str | None = None
    name: str | None = None
    company: str | None = None
    # Which kind of record the id names where a provider has several (Zendesk Sell lead/contact).
    type: str | None = None
    phone: str | None = None  # E.164, where the provider has one (Whippy)

    def as_dict(self) -> dict[str, Any]:
        fields = {"id": self.id, "email": self.email, "name": self.name, "company": self.company}
        # Only where a provider has them: the SPEC keys stay.
        if self.type is not None:
            fields["type"] = self.type
        if self.phone is not None:
            fields["phone"] = self.phone
        return fields


@dataclass(frozen=True, slots=True, kw_only=True)
class Enrollment:
    """One contact in one sequence, as observed in one listing."""

    enrollment_id: str
    sequence: SequenceRef
    contact: Contact
    state: State
    # Provider's own change timestamp (RFC 3339) where it has one: drives incremental polls.
    updated_at: str | None = None
