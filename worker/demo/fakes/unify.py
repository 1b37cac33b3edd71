"""Fake Unify GTM Sequences API v1 (public beta): sequences and enrollments.

Follows docs.unifygtm.com and its OpenAPI spec: `x-api-key` auth, opaque `cursor` + `limit`
(1..100) paging with `{enrollments, next_cursor}`, filters `sequence_id`, `person_id`,
`mailbox_id`, `enrolled_by_play_id`, repeatable `status`, and inclusive `updated_after` /
`updated_before`; errors are `{"status": "<enum>", "message": ...}`. Timestamps have second
precision ("2023-11-07T05:31:56Z") like the docs, so several mutations can share one
`updated_at`; the inclusive filters still return all of them.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hmac
import json
import random
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from worker.demo.fakes import faults as fx
from worker.demo.fakes.server import Request, Response, retry_after_value, strip_prefix

MAX_LIMIT = 100
DEFAULT_LIMIT = 25  # the spec gives no default; clients should always send limit
_FLAGS = (
    "is_blocked",
    "is_bounced",
    "is_canceled",
    "is_excluded",
    "is_opted_out",
    "is_paused",
    "is_replied",
)
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", re.I)
_UPDATABLE = {"status", "started_at", "ended_at", "reply_email_message", "reply_category", *_FLAGS}


class EnrollmentStatus(StrEnum):
    DRAFT = "DRAFT"
    IN_PROGRESS = "IN_PROGRESS"
    FINISHED = "FINISHED"


class ManualClock:
    """An injectable clock for tests: starts at `start`, moves only when told."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float = 1.0) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> datetime | None:
    """An aware datetime for an RFC 3339 date-time, else None."""
    if not _RFC3339.fullmatch(text):
        return None
    try:
        parsed = datetime.fromisoformat(text.upper())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _when(value: datetime | str | None) -> str | None:
    return rfc3339(value) if isinstance(value, datetime) else value


class UnifyWorld:
    """Thread-safe state of one Unify account. Ids come from a seeded RNG (deterministic)."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] | None = None,
        seed: int = 0,
        include_status: bool = True,
        include_enrolled_by_play: bool = True,
        classification_categories: bool = True,
        parent_changes_bump: bool = True,
    ) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self.include_status = include_status  # the older docs example has no `status`
        self.include_enrolled_by_play = include_enrolled_by_play
        self.classification_categories = classification_categories
        self.parent_changes_bump = parent_changes_bump
        self._sequences: dict[str, dict[str, Any]] = {}
        self._rows: dict[str, tuple[int, dict[str, Any]]] = {}  # id -> (creation seq, record)
        self._seq = 0
        self._people: dict[str, str] = {}
        self._mailboxes: dict[str, str] = {}
        self._owner = self.new_id()

    def new_id(self) -> str:
        with self._lock:
            return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def now(self) -> str:
        return rfc3339(self._clock())

    def add_sequence(self, name: str, *, is_paused: bool = False) -> str:
        with self._lock:
            seq_id, now = self.new_id(), self.now()
            self._seq += 1
            self._sequences[seq_id] = {
                "_seq": self._seq,
                "id": seq_id,
                "created_at": now,
                "updated_at": now,
                "owner": {"id": self._owner, "email": "owner@seller.example"}
                | {"first_name": "Sam", "last_name": "Owner"},
                "name": name,
                "is_paused": is_paused,
                "send_schedule": None,
                "sequence_ruleset": None,
            }
            return seq_id

    def enroll(
        self,
        sequence_id: str,
        *,
        email: str,
        first_name: str | None = None,
        last_name: str | None = None,
        linkedin_url: str | None = None,
        status: EnrollmentStatus | str = EnrollmentStatus.IN_PROGRESS,
        mailbox_email: str = "rep@seller.example",
        play_name: str | None = None,
    ) -> str:
        with self._lock:
            sequence = self._sequences[sequence_id]
            enrollment_id, now = self.new_id(), self.now()
            person_id = self._people.setdefault(email.lower(), self.new_id())
            mailbox_id = self._mailboxes.setdefault(mailbox_email.lower(), self.new_id())
            status = EnrollmentStatus(status)
            record: dict[str, Any] = {
                "id": enrollment_id,
                "created_at": now,
                "updated_at": now,
                "sequence": {k: sequence[k] for k in ("id", "name", "is_paused")},
                "person": {"id": person_id, "email": email, "first_name": first_name}
                | {"last_name": last_name, "linkedin_url": linkedin_url},
                "mailbox": {"id": mailbox_id, "email": mailbox_email, "display_name": "Rep"}
                | {"is_paused": False, "is_unauthorized": False},
                "enrolled_by_play": {"id": self.new_id(), "name": play_name} if play_name else None,
                "reply_email_message": None,
                "status": status.value,
                **dict.fromkeys(_FLAGS, False),
                "started_at": None if status is EnrollmentStatus.DRAFT else now,
                "ended_at": now if status is EnrollmentStatus.FINISHED else None,
            }
            self._seq += 1
            self._rows[enrollment_id] = (self._seq, record)
            return enrollment_id

    def update(self, enrollment_id: str, **fields: Any) -> None:
        """Change fields (status, is_* flags, started_at, ended_at, reply_email_message,
        reply_category) and bump `updated_at`. Derived fields follow like in Unify:
        finishing or canceling sets `ended_at`, a reply gets a `reply_email_message`."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise TypeError(f"cannot update {sorted(unknown)}")
        with self._lock:
            record = self._rows[enrollment_id][1]
            now = self.now()
            category = fields.pop("reply_category", "POSITIVE")
            for key in ("started_at", "ended_at"):
                if key in fields:
                    fields[key] = _when(fields[key])
            if "status" in fields:
                fields["status"] = EnrollmentStatus(fields["status"]).value
            record.update(fields)
            if record["status"] != "DRAFT" and record["started_at"] is None:
                record["started_at"] = now
            ended = record["status"] == "FINISHED" or record["is_canceled"]
            if ended and record["ended_at"] is None:
                record["ended_at"] = now
            if fields.get("is_replied") and record["reply_email_message"] is None:
                record["reply_email_message"] = {
                    "id": self.new_id(),
                    "subject": "Re: quick question",
                    "classifications": [{"id": self.new_id(), "category": category}],
                    "received_at": now,
                }
            self._bump(record, now)

    def pause_sequence(self, sequence_id: str, *, paused: bool = True) -> None:
        """Pause or resume a whole sequence: every enrollment's `sequence.is_paused` follows."""
        with self._lock:
            self._sequences[sequence_id]["is_paused"] = paused
            self._sequences[sequence_id]["updated_at"] = self.now()
            changes = {"is_paused": paused}
            self._parent_changed(lambda r: r["sequence"]["id"] == sequence_id, "sequence", changes)

    def set_mailbox(
        self,
        mailbox_email: str,
        *,
        is_paused: bool | None = None,
        is_unauthorized: bool | None = None,
    ) -> None:
        """Pause a sending mailbox or lose its authorization, for every enrollment using it."""
        given = {"is_paused": is_paused, "is_unauthorized": is_unauthorized}
        changes = {k: v for k, v in given.items() if v is not None}
        with self._lock:
            mailbox_id = self._mailboxes[mailbox_email.lower()]
            self._parent_changed(lambda r: r["mailbox"]["id"] == mailbox_id, "mailbox", changes)

    def _parent_changed(
        self, match: Callable[[Mapping[str, Any]], bool], key: str, changes: Mapping[str, Any]
    ) -> None:
        now = self.now()
        for _, record in self._rows.values():
            if match(record):
                record[key].update(changes)
                if self.parent_changes_bump:
                    self._bump(record, now)

    def touch(self, enrollment_id: str) -> None:
        """Bump `updated_at` only (e.g. a step ran; Unify shows nothing else)."""
        with self._lock:
            self._bump(self._rows[enrollment_id][1], self.now())

    def hard_delete(self, enrollment_id: str) -> None:
        with self._lock:
            del self._rows[enrollment_id]

    def enrollment(self, enrollment_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._rows.get(enrollment_id)
            return self._render(row[1]) if row else None

    def enrollments(self) -> list[dict[str, Any]]:
        return self.page(after=0, limit=len(self._rows) or 1)[0]

    def page(
        self,
        *,
        after: int,
        limit: int,
        match: Callable[[Mapping[str, Any]], bool] = lambda _: True,
    ) -> tuple[list[dict[str, Any]], int, bool]:
        """Up to `limit` matching enrollments created after position `after`, in creation
        order: (records, position of the last one, whether more match after it)."""
        with self._lock:
            found: list[dict[str, Any]] = []
            last = after
            for seq, record in self._rows.values():  # dicts keep creation order
                if seq <= after or not match(record):
                    continue
                if len(found) == limit:
                    return found, last, True
                found.append(self._render(record))
                last = seq
            return found, last, False

    def sequence(self, sequence_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._sequences.get(sequence_id)
            return {k: v for k, v in found.items() if k != "_seq"} if found else None

    def sequence_page(self, *, after: int, limit: int) -> tuple[list[dict[str, Any]], int, bool]:
        with self._lock:
            rows = [s for s in self._sequences.values() if s["_seq"] > after]
        page = [{k: v for k, v in s.items() if k != "_seq"} for s in rows[:limit]]
        last = rows[len(page) - 1]["_seq"] if page else after
        return copy.deepcopy(page), last, len(rows) > limit

    def _bump(self, record: dict[str, Any], now: str) -> None:
        record["updated_at"] = max(now, record["updated_at"])  # same format: text order works

    def _render(self, record: Mapping[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(dict(record))
        if not self.include_status:
            del out["status"]
        if not self.include_enrolled_by_play:
            del out["enrolled_by_play"]
        message = out.get("reply_email_message")
        if message and not self.classification_categories:
            message["classifications"] = [{"id": c["id"]} for c in message["classifications"]]
        return out


_ERROR_STATUS = {400: "bad_request", 401: "unauthorized", 404: "not_found", 409: "conflict"}
_ERROR_STATUS |= {429: "rate_limited"}


def error(status: int, message: str, *, retry_after: float | None = None, **extra: Any) -> Response:
    """Unify's error body: {"status": "<enum>", "message": ...}, Retry-After on 429."""
    body = {"status": _ERROR_STATUS.get(status, "error"), "message": message, **extra}
    headers = {} if retry_after is None else {"Retry-After": retry_after_value(retry_after)}
    return Response.json(body, status=status, headers=headers)


def _bad(name: str, code: str, message: str) -> Response:
    return error(400, message, errors=[{"code": code, "path": [name]}])


def encode_cursor(after: int, page: int) -> str:
    raw = json.dumps({"a": after, "p": page}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int] | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        return int(data["a"]), int(data["p"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        return None


class UnifyApp:
    """Serves a UnifyWorld at `/sequences/v1/...` (below `prefix` when mounted)."""

    def __init__(
        self,
        world: UnifyWorld,
        *,
        api_key: str,
        faults: fx.FaultPlan | None = None,
        prefix: str = "",
    ) -> None:
        self.world = world
        self.faults = faults or fx.FaultPlan()
        self._key = api_key.encode()
        self._prefix = prefix

    def __repr__(self) -> str:
        return f"UnifyApp(prefix={self._prefix!r})"

    def handle(self, request: Request) -> Response:
        path = strip_prefix(request.path, self._prefix)
        if path is None:
            return error(404, "Not found.")
        given = request.headers.get("x-api-key", "")
        if not hmac.compare_digest(given.encode(), self._key):
            return error(401, "Invalid or missing API key.")
        parts = [p for p in path.split("/") if p]
        if parts[:2] != ["sequences", "v1"] or len(parts) not in (3, 4):
            return error(404, "Not found.")
        resource, one = parts[2], parts[3] if len(parts) == 4 else None
        if resource not in ("enrollments", "sequences"):
            return error(404, "Not found.")
        if request.method != "GET":
            return error(405, "Method not allowed.")
        kinds = set(fx.ALL_KINDS)
        if one is not None:
            kinds -= fx.PAGINATION_KINDS
        elif not request.param("cursor"):
            kinds.discard(fx.FaultKind.REPEAT_CURSOR)  # only a cursor can be repeated
        fault = self.faults.take(path, kinds=kinds)
        early = fx.before(fault, error=error, sleep=self.faults.sleep)
        if early is not None:
            return early
        anomaly = fault.kind if fault and fault.kind in fx.PAGINATION_KINDS else None
        if one is not None:
            response = self._one(resource, one)
        else:
            response = self._list(resource, request, anomaly)
        key = None if one is not None else resource
        return fx.after(fault, response, records_key=key, id_field="id")

    def _one(self, resource: str, item_id: str) -> Response:
        if not _is_uuid(item_id):
            return _bad("id", "invalid_string", "Invalid uuid.")
        if resource == "enrollments":
            found = self.world.enrollment(item_id)
        else:
            found = self.world.sequence(item_id)
        if found is None:
            return error(404, f"{resource[:-1].capitalize()} not found.")
        return Response.json(found)

    def _list(self, resource: str, request: Request, anomaly: fx.FaultKind | None) -> Response:
        limit_raw = request.param("limit")
        limit = DEFAULT_LIMIT
        if limit_raw is not None:
            if not limit_raw.lstrip("-").isdigit():
                return _bad("limit", "invalid_type", "Expected integer.")
            limit = int(limit_raw)
            if not 1 <= limit <= MAX_LIMIT:
                code = "too_small" if limit < 1 else "too_big"
                return _bad("limit", code, f"limit must be between 1 and {MAX_LIMIT}.")
        cursor = request.param("cursor")
        after, page = 0, 0
        if cursor:
            decoded = decode_cursor(cursor)
            if decoded is None:
                return _bad("cursor", "invalid_cursor", "Invalid cursor.")
            after, page = decoded
        if anomaly is fx.FaultKind.EMPTY_PAGE:  # nothing here, yet "more" to come
            return Response.json({resource: [], "next_cursor": encode_cursor(after, page + 1)})
        if resource == "sequences":
            rows, last, more = self.world.sequence_page(after=after, limit=limit)
        else:
            match = _matcher(request)
            if isinstance(match, Response):
                return match
            rows, last, more = self.world.page(after=after, limit=limit, match=match)
        next_cursor = encode_cursor(last, page + 1) if more else None
        if anomaly is fx.FaultKind.REPEAT_CURSOR:
            next_cursor = cursor
        return Response.json({resource: rows, "next_cursor": next_cursor})


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _matcher(request: Request) -> Callable[[Mapping[str, Any]], bool] | Response:
    """The enrollment filter described by the query, or a 400 answer."""
    ids: dict[str, str] = {}
    for name in ("sequence_id", "person_id", "mailbox_id", "enrolled_by_play_id"):
        value = request.param(name)
        if value is not None:
            if not _is_uuid(value):
                return _bad(name, "invalid_string", "Invalid uuid.")
            ids[name.removesuffix("_id")] = value
    statuses = request.query.get("status", [])
    for value in statuses:
        if value not in EnrollmentStatus.__members__:
            return _bad("status", "invalid_enum_value", f"Invalid status '{value}'.")
    bounds: dict[str, datetime] = {}
    for name in ("updated_after", "updated_before"):
        raw = request.param(name)
        if raw is not None:
            parsed = parse_rfc3339(raw)
            if parsed is None:
                return _bad(name, "invalid_string", "Invalid RFC 3339 datetime.")
            bounds[name] = parsed

    def match(record: Mapping[str, Any]) -> bool:
        for obj, wanted in ids.items():
            if (record[obj] or {}).get("id") != wanted:
                return False
        if statuses and record["status"] not in statuses:
            return False
        updated = datetime.fromisoformat(record["updated_at"])
        if "updated_after" in bounds and updated < bounds["updated_after"]:
            return False
        return not ("updated_before" in bounds and updated > bounds["updated_before"])

    return match
