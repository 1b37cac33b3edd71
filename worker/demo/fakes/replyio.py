"""Fake Reply.io API, v3 and v4: sequences and the contacts enrolled in them.

Serves `/v3/...` in the shape of docs.reply.io (vendor-examples/replyio.v3.list-contacts
.doc-example.json: `statusInSequence` lower-case, `emailDisposition`, `currentStep{stepId,
displayName}`) and `/v4/...` in the shape of api-docs.platform.replycontrol.com (vendor-examples/
replyio.v4.list-contacts.doc-example.json), with exactly those keys. `X-API-Key` and
`Authorization: Bearer` are both accepted. top/skip paging (top 1..1000, default 25) with
`{items, hasMore}`, `sort_by`/`sort_direction`, RFC 9457 problem+json errors, 401 with an empty
body, and the documented quirk that listing contacts of an unknown sequence answers 200 with
no items.

Switchable where the vendor material is silent or accounts differ: `ReplyioApp.versions` (a
v3-only or v4-only account answers 404 on the other version) and
`ReplyioWorld.v3_auto_reply_is_replied` (whether v3's `emailDisposition.isReplied` is true for a
contact that sent only an auto-reply).
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from worker.demo.fakes import faults as fx
from worker.demo.fakes.server import Headers, Request, Response, retry_after_value, strip_prefix

MAX_TOP = 1000
DEFAULT_TOP = 25
_SORTABLE = {"addingDate", "email", "firstName", "lastName", "company", "status", "contactId"}
VERSIONS = frozenset({"v3", "v4"})
# The exact keys of each version's list-contacts record (the vendor examples).
V4_KEYS = (
    "contactId", "sequenceId", "email", "firstName", "lastName", "company", "title", "status",
    "subStatus", "currentStep", "addingDate", "movingDate", "nextSendAfter", "isOptedOut",
    "emailAccountId", "linkedInAccountId", "icpScore",
)  # fmt: skip
V3_KEYS = (
    "contactId", "sequenceId", "email", "firstName", "lastName", "company", "title",
    "statusInSequence", "isOptedOut", "callStatus", "meetingStatus", "emailDisposition",
    "currentStep", "addingDate", "emailAccountId", "linkedInAccountId",
)  # fmt: skip


class ContactStatus(StrEnum):
    ACTIVE = "Active"
    PAUSED = "Paused"
    FINISHED = "Finished"
    INACTIVE = "Inactive"
    OUT_OF_OFFICE = "OutOfOffice"


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()  # 2024-03-08T10:00:00+00:00


class ReplyioWorld:
    """Thread-safe state of one Reply.io account; tests and the demo mutate it."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] | None = None,
        owner_user_id: int = 1,
        v3_auto_reply_is_replied: bool = True,
    ) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._owner = owner_user_id
        self.v3_auto_reply_is_replied = v3_auto_reply_is_replied
        self._lock = threading.RLock()
        self._sequences: dict[int, dict[str, Any]] = {}
        self._steps: dict[int, int] = {}
        self._contacts: dict[int, dict[int, dict[str, Any]]] = {}  # insertion order kept

    def add_sequence(
        self, seq_id: int, name: str, *, status: str = "Active", steps: int = 3
    ) -> None:
        with self._lock:
            self._sequences[seq_id] = {
                "id": seq_id,
                "ownerUserId": self._owner,
                "name": name,
                "status": status,
                "created": _ts(self._clock()),
                "isArchived": status == "Archived",
                "health": "healthy",
            }
            self._steps[seq_id] = steps
            self._contacts.setdefault(seq_id, {})

    def add_contact(
        self,
        seq_id: int,
        contact_id: int,
        *,
        email: str | None,
        first: str | None = None,
        last: str | None = None,
        company: str | None = None,
        title: str | None = None,
        status: ContactStatus | str = ContactStatus.ACTIVE,
        step: int = 1,
        email_account_id: int | None = 101,
        icp_score: float | None = None,
    ) -> None:
        now, status = self._clock(), ContactStatus(status)
        record: dict[str, Any] = {
            "contactId": contact_id,
            "sequenceId": seq_id,
            "email": email,
            "firstName": first,
            "lastName": last,
            "company": company,
            "title": title,
            "status": ContactStatus.ACTIVE.value,
            "subStatus": "None",
            "currentStep": step,
            "addingDate": _ts(now),
            "movingDate": None,
            "nextSendAfter": None,
            "isOptedOut": False,
            "emailAccountId": email_account_id,
            "linkedInAccountId": None,
            "icpScore": icp_score,
            # Kept for v3 only (v4 has no reply or bounce signal): never rendered by v4.
            "_replied": False,
            "_bounced": False,
        }
        with self._lock:
            if seq_id not in self._sequences:
                raise KeyError(f"unknown sequence {seq_id}")
            self._apply_status(record, status)
            self._contacts[seq_id][contact_id] = record

    def set_status(self, seq_id: int, contact_id: int, status: ContactStatus | str) -> None:
        with self._lock:
            self._apply_status(self._get(seq_id, contact_id), ContactStatus(status))

    def advance_step(self, seq_id: int, contact_id: int, *, by: int = 1) -> None:
        with self._lock:
            self._get(seq_id, contact_id)["currentStep"] += by

    def opt_out(self, seq_id: int, contact_id: int) -> None:
        with self._lock:
            self._get(seq_id, contact_id)["isOptedOut"] = True

    def reply(self, seq_id: int, contact_id: int) -> None:
        """A real reply: v3 shows isReplied; the contact finishes (MARK_AS_FINISHED)."""
        with self._lock:
            record = self._get(seq_id, contact_id)
            record["_replied"] = True
            self._apply_status(record, ContactStatus.FINISHED)

    def bounce(self, seq_id: int, contact_id: int) -> None:
        with self._lock:
            record = self._get(seq_id, contact_id)
            record["_bounced"] = True
            self._apply_status(record, ContactStatus.FINISHED)

    def archive_sequence(self, seq_id: int) -> None:
        with self._lock:
            self._sequences[seq_id].update(status="Archived", isArchived=True)

    def remove_contact(self, seq_id: int, contact_id: int) -> None:
        with self._lock:
            del self._contacts[seq_id][contact_id]

    def move_contact(self, contact_id: int, *, from_seq: int, to_seq: int) -> None:
        """Reply's "move to another sequence": gone from one, in the other with movingDate."""
        with self._lock:
            record = self._contacts[from_seq].pop(contact_id)
            record.update(sequenceId=to_seq, currentStep=1, movingDate=_ts(self._clock()))
            self._contacts[to_seq][contact_id] = record

    def contact(
        self, seq_id: int, contact_id: int, *, version: str = "v4"
    ) -> dict[str, Any] | None:
        with self._lock:
            record = self._contacts.get(seq_id, {}).get(contact_id)
            return self._render(record, version) if record else None

    def raw(self, seq_id: int, contact_id: int) -> dict[str, Any]:
        """The world's own record (tests edit it in place to serve odd values)."""
        return self._get(seq_id, contact_id)

    def sequence(self, seq_id: int, *, version: str = "v4") -> dict[str, Any] | None:
        with self._lock:
            found = self._sequences.get(seq_id)
            return _sequence_shape(found, version) if found else None

    def sequences(self, *, version: str = "v4") -> list[dict[str, Any]]:
        with self._lock:
            return [_sequence_shape(s, version) for s in self._sequences.values()]

    def contacts(
        self,
        seq_id: int,
        *,
        sort_by: str | None = None,
        descending: bool = False,
        version: str = "v4",
    ) -> list[dict[str, Any]]:
        """Every contact of a sequence (insertion order unless sorted); [] when unknown."""
        with self._lock:
            records = list(self._contacts.get(seq_id, {}).values())
            if sort_by:
                records.sort(key=lambda r: (r[sort_by] is None, str(r[sort_by] or "")))
            rows = [self._render(r, version) for r in records]
        return rows[::-1] if descending else rows

    def _render(self, record: dict[str, Any], version: str) -> dict[str, Any]:
        if version == "v4":
            return {k: record[k] for k in V4_KEYS}
        status = str(record["status"])
        auto_reply = record["subStatus"] == "AutoReplied"
        replied = record["_replied"] or (auto_reply and self.v3_auto_reply_is_replied)
        step = record["currentStep"]
        v3 = {
            **{k: record[k] for k in V3_KEYS if k in record},
            "statusInSequence": status[:1].lower() + status[1:],  # "active", "outOfOffice"
            "callStatus": "none",
            "meetingStatus": "none",
            "emailDisposition": {"isReplied": replied, "isBounced": record["_bounced"]},
            "currentStep": {"stepId": record["sequenceId"] * 100 + step, "displayName": str(step)},
        }
        return {k: v3[k] for k in V3_KEYS}

    def step_count(self, seq_id: int) -> int:
        with self._lock:
            return self._steps.get(seq_id, 0)

    def _get(self, seq_id: int, contact_id: int) -> dict[str, Any]:
        return self._contacts[seq_id][contact_id]

    def _apply_status(self, record: dict[str, Any], status: ContactStatus) -> None:
        record["status"] = status.value
        record["subStatus"] = "AutoReplied" if status is ContactStatus.OUT_OF_OFFICE else "None"
        active = status in (ContactStatus.ACTIVE, ContactStatus.OUT_OF_OFFICE)
        later = self._clock() + timedelta(days=1)
        record["nextSendAfter"] = _ts(later) if active else None


def problem(
    status: int, detail: str, *, code: str = "", retry_after: float | None = None, **extra: Any
) -> Response:
    """RFC 9457 problem+json as Reply.io sends it (401 is special: empty body)."""
    if status == 401:
        return Response(status=401)
    titles = {
        400: "Bad Request",
        404: "Not Found",
        405: "Method Not Allowed",
        429: "Too Many Requests",
    }
    body = {
        "type": f"https://docs.reply.io/problems/{status}",
        "title": titles.get(status, "Server Error" if status >= 500 else "Error"),
        "status": status,
        "detail": detail,
        **({"code": code} if code else {}),
        **extra,
    }
    headers = {} if retry_after is None else {"Retry-After": retry_after_value(retry_after)}
    return Response.json(
        body, status=status, content_type="application/problem+json", headers=headers
    )


def _problem_error(status: int, message: str, *, retry_after: float | None) -> Response:
    code = "rateLimit.exceeded" if status == 429 else ""
    return problem(status, message, code=code, retry_after=retry_after)


class ReplyioApp:
    """Serves a ReplyioWorld at `/v3/...` and `/v4/...` (below `prefix` when mounted)."""

    def __init__(
        self,
        world: ReplyioWorld,
        *,
        api_key: str,
        faults: fx.FaultPlan | None = None,
        prefix: str = "",
        versions: frozenset[str] = VERSIONS,
    ) -> None:
        self.world = world
        self.versions = versions  # a v3-only or v4-only account: 404 on the other
        self.requests: list[str] = []  # paths asked for, in order (tests count requests)
        self.faults = faults or fx.FaultPlan()
        self._key = api_key.encode()
        self._prefix = prefix

    def __repr__(self) -> str:
        return f"ReplyioApp(prefix={self._prefix!r})"

    def handle(self, request: Request) -> Response:
        path = strip_prefix(request.path, self._prefix)
        if path is None:
            return problem(404, "Not found.")
        if not self._authorized(request.headers):
            return Response(status=401)
        parts = [p for p in path.split("/") if p]
        self.requests.append(path)
        version = parts[0] if parts else ""
        if (
            version not in self.versions
            or parts[1:2] != ["sequences"]
            or not _valid_route(parts[2:])
        ):
            return problem(404, "Not found.")
        if request.method != "GET":
            return problem(405, "Method not allowed.")
        rest = parts[2:]
        listing = len(rest) in (0, 2)
        kinds = set(fx.ALL_KINDS if listing else fx.ALL_KINDS - fx.PAGINATION_KINDS)
        if (request.param("skip") or "0") in ("0", ""):
            kinds.discard(fx.FaultKind.REPEAT_CURSOR)  # only a later page can repeat one
        fault = self.faults.take(path, kinds=kinds)
        early = fx.before(fault, error=_problem_error, sleep=self.faults.sleep)
        if early is not None:
            return early
        anomaly = fault.kind if fault and fault.kind in fx.PAGINATION_KINDS else None
        if not rest:
            response = self._paged(request, None, anomaly, version)
        elif len(rest) == 1:
            response = self._sequence(int(rest[0]), version)
        elif len(rest) == 2:
            response = self._paged(request, int(rest[0]), anomaly, version)
        else:
            response = self._contact(int(rest[0]), int(rest[2]), version)
        id_field = "contactId" if len(rest) >= 2 else "id"
        return fx.after(
            fault, response, records_key="items" if listing else None, id_field=id_field
        )

    def _authorized(self, headers: Headers) -> bool:
        given = headers.get("x-api-key")
        if given is None:
            scheme, _, token = headers.get("authorization", "").partition(" ")
            given = token.strip() if scheme.lower() == "bearer" else None
        return given is not None and hmac.compare_digest(given.encode(), self._key)

    def _paged(
        self, request: Request, seq_id: int | None, anomaly: fx.FaultKind | None, version: str
    ) -> Response:
        top = _int_param(request, "top", DEFAULT_TOP, 1, MAX_TOP)
        skip = _int_param(request, "skip", 0, 0, None)
        if isinstance(top, Response):
            return top
        if isinstance(skip, Response):
            return skip
        if anomaly is fx.FaultKind.EMPTY_PAGE:
            return Response.json({"items": [], "hasMore": True})
        if anomaly is fx.FaultKind.REPEAT_CURSOR:
            skip = max(0, skip - top)  # serve the previous page again
        if seq_id is None:
            rows = self.world.sequences(version=version)
            archived = request.param("isArchived")
            if archived in ("true", "false"):
                rows = [r for r in rows if r["isArchived"] is (archived == "true")]
        else:
            sort_by = request.param("sort_by")
            direction = (request.param("sort_direction") or "asc").lower()
            if sort_by == "statusInSequence":
                sort_by = "status"
            if sort_by is not None and sort_by not in _SORTABLE:
                return _invalid("sort_by", f"Cannot sort by '{sort_by}'.")
            if direction not in ("asc", "desc"):
                return _invalid("sort_direction", "Must be 'asc' or 'desc'.")
            rows = self.world.contacts(
                seq_id, sort_by=sort_by, descending=direction == "desc", version=version
            )
        items = rows[skip : skip + top]
        more = anomaly is not None or skip + top < len(rows)
        return Response.json({"items": items, "hasMore": more})

    def _sequence(self, seq_id: int, version: str) -> Response:
        found = self.world.sequence(seq_id, version=version)
        if found is None:
            return problem(404, f"Sequence {seq_id} was not found.", code="sequence.notFound")
        steps = [
            {
                "id": seq_id * 100 + n,
                "type": "Email",
                "number": str(n),
                "delayInMinutes": 0 if n == 1 else 1440,
                "template": {"subject": f"Step {n}", "body": "Hi {{FirstName}}"},
            }
            for n in range(1, self.world.step_count(seq_id) + 1)
        ]
        return Response.json(
            {
                **found,
                "scheduleId": 1,
                "emailAccounts": [{"id": 101, "email": "rep@seller.example"}],
                "linkedInAccounts": [],
                "settings": {"repliesHandlingType": "MARK_AS_FINISHED", "emailsCountPerDay": 50},
                "steps": steps,
            }
        )

    def _contact(self, seq_id: int, contact_id: int, version: str) -> Response:
        found = self.world.contact(seq_id, contact_id, version=version)
        if found is None:
            detail = f"Contact {contact_id} is not in sequence {seq_id}."
            return problem(404, detail, code="sequenceContact.notFound")
        return Response.json(found)


def _sequence_shape(found: dict[str, Any], version: str) -> dict[str, Any]:
    """v4 says `Active`/`Archived`; v3 lower-cases its status (`active`, `archived`)."""
    out = dict(found)
    if version == "v3":
        out["status"] = str(out["status"]).lower()
    else:
        out.pop("health")  # v3 only
    return out


def _valid_route(rest: list[str]) -> bool:
    shapes = {0: "", 1: "i", 2: "ic", 3: "ici"}
    shape = shapes.get(len(rest))
    if shape is None:
        return False
    for kind, part in zip(shape, rest, strict=True):
        if (kind == "i" and not part.isdigit()) or (kind == "c" and part != "contacts"):
            return False
    return True


def _int_param(
    request: Request, name: str, default: int, lo: int, hi: int | None
) -> int | Response:
    raw = request.param(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        return _invalid(name, f"The value '{raw}' is not a valid integer.")
    if value < lo or (hi is not None and value > hi):
        bounds = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        return _invalid(name, f"'{name}' must be {bounds}.")
    return value


def _invalid(name: str, detail: str) -> Response:
    return problem(
        400,
        "One or more validation errors occurred.",
        code="validation.invalidParameter",
        errors=[{"pointer": f"/{name}", "detail": detail}],
    )
