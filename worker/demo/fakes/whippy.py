"""Fake Whippy API v1: sequences, their steps, and one step-contact row per step reached.

Follows docs.whippy.ai and Whippy's own samples (providers/README.md §2): `X-WHIPPY-KEY` auth,
limit/offset paging (default 50) with `{data, total}`, single resources as `{data}`, errors as
`{"errors": [{"description": ...}], "status": 401}`, 429 with
`X-RateLimit-Remaining-Interval-Milliseconds`, and the listing's status vocabulary
(`pending`, `active`, `inactive`, `moved`, `complete`, `removed`).

Rows carry exactly the fields of Whippy's own step-contact samples (vendor-examples/
whippy.webhook-samples.json): no `responded` field (only the documented `responded=true`
filter sees replies), `contact.phone` in E.164, and `email` may be `""`. Removing a contact
marks its current row `finished` on the step it was on (removesequencecontacts), it is not
deleted; `hard_delete` makes rows disappear for tests of absence.

What the docs leave unsure is switchable: `include_total` (the list envelope's count) on the
world, and on the app `max_limit` (500 documented for one endpoint) and `clamp_limit` (cap a
larger limit instead of a 422). Without `total`, an injected empty page looks like the end of
the listing: nothing can tell.
"""

from __future__ import annotations

import copy
import hmac
import random
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from worker.demo.fakes import faults as fx
from worker.demo.fakes.server import Request, Response, strip_prefix

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
RETRY_MS_HEADER = "X-RateLimit-Remaining-Interval-Milliseconds"
_BOOL_FILTERS = ("responded", "unsubscribed", "clicked_link")


class StepStatus(StrEnum):
    """The contacts listing's vocabulary (its `status` filter accepts exactly these)."""

    PENDING = "pending"
    ACTIVE = "active"
    INACTIVE = "inactive"
    MOVED = "moved"
    COMPLETE = "complete"
    REMOVED = "removed"


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # 2023-11-02T14:03:45Z


class WhippyWorld:
    """Thread-safe state of one Whippy organization. Ids come from a seeded RNG."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] | None = None,
        seed: int = 0,
        include_total: bool = True,
    ) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self.include_total = include_total
        self._sequences: dict[str, dict[str, Any]] = {}
        self._rows: dict[str, dict[str, Any]] = {}  # row id -> row, in creation order
        self._current: dict[tuple[str, str], str] = {}  # (sequence, contact) -> newest row id
        self._channel = self.new_id()

    def new_id(self) -> str:
        with self._lock:
            return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def add_sequence(self, title: str, *, steps: int = 3, status: str = "active") -> str:
        with self._lock:
            seq_id, now = self.new_id(), _z(self._clock())
            self._sequences[seq_id] = {
                "id": seq_id,
                "title": title,
                "description": None,
                "type": "sequential",
                "status": status,
                "access_level": "organization",
                "settings": {"on_response": "remove", "on_re_add": "include"},
                "created_at": now,
                "updated_at": now,
                "steps": [self._step(seq_id, n) for n in range(steps)],
            }
            return seq_id

    def _step(self, seq_id: str, position: int) -> dict[str, Any]:
        return {
            "id": self.new_id(),
            "title": f"Step {position + 1}",
            "body": "Hi {{first_name}}",
            "status": "active",
            "position": position,
            "sequence_id": seq_id,
            "schedule_options": {"days": 0 if position == 0 else 1, "hours": 0, "minutes": 0},
        }

    def add_contact(
        self,
        seq_id: str,
        *,
        name: str,
        email: str | None = None,
        phone: str | None = None,
        step: int = 1,
        status: StepStatus | str = StepStatus.ACTIVE,
    ) -> str:
        """Enrolls a new contact on `step` (1-based): earlier steps' rows are `complete`."""
        with self._lock:
            contact = {"id": self.new_id(), "name": name, "email": email}
            contact["phone"] = phone or f"+1555{self._rng.randrange(10**7):07d}"
            steps = self._sequences[seq_id]["steps"]
            for position in range(step):
                last = position == step - 1
                self._add_row(
                    seq_id, contact, steps[position]["id"], status if last else "complete"
                )
            return str(contact["id"])

    def _add_row(self, seq_id: str, contact: dict[str, Any], step_id: str, status: str) -> None:
        now = self._clock()
        row_id = self.new_id()
        self._rows[row_id] = {
            "id": row_id,
            "status": str(status),
            "contact": dict(contact),
            "step_id": step_id,
            "sequence_id": seq_id,
            "channel_id": self._channel,
            "added_by_id": 1,
            "scheduled_at": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "clicked_link": False,
            "unsubscribed": False,
            "_responded": False,  # seen only through the `responded` filter, never rendered
            "created_at": _z(now),
            "updated_at": _z(now),
            "run_created_at": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "run_updated_at": None,
            "contact_messages": [],
        }
        self._current[(seq_id, contact["id"])] = row_id

    def advance(self, seq_id: str, contact_id: str) -> None:
        """The current step is `complete`; the next step's row starts `active`."""
        with self._lock:
            row = self._newest(seq_id, contact_id)
            steps = [s["id"] for s in self._sequences[seq_id]["steps"]]
            self._touch(row, status=StepStatus.COMPLETE)
            next_step = steps[steps.index(row["step_id"]) + 1]
            self._add_row(seq_id, row["contact"], next_step, StepStatus.ACTIVE)

    def set_status(self, seq_id: str, contact_id: str, status: StepStatus | str) -> None:
        """Any value, documented or not, on the contact's newest row."""
        with self._lock:
            self._touch(self._newest(seq_id, contact_id), status=str(status))

    def unsubscribe(self, seq_id: str, contact_id: str) -> None:
        with self._lock:
            self._touch(self._newest(seq_id, contact_id), unsubscribed=True)

    def respond(self, seq_id: str, contact_id: str) -> None:
        with self._lock:
            self._touch(self._newest(seq_id, contact_id), _responded=True)

    def remove_contact(self, seq_id: str, contact_id: str) -> None:
        """Whippy's removal: the contact's row becomes `finished` on the step it was on."""
        with self._lock:
            self._touch(self._newest(seq_id, contact_id), status="finished")

    def hard_delete(self, seq_id: str, contact_id: str) -> None:
        """Every row of the contact disappears (e.g. the contact itself was deleted)."""
        with self._lock:
            for row_id in [i for i, r in self._rows.items() if _owns(r, seq_id, contact_id)]:
                del self._rows[row_id]
            self._current.pop((seq_id, contact_id), None)

    def newest(self, seq_id: str, contact_id: str) -> dict[str, Any]:
        with self._lock:
            return self.render(self._newest(seq_id, contact_id))

    def rows(self, seq_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [self.render(r) for r in self._rows.values() if r["sequence_id"] == seq_id]

    def sequence(self, seq_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._sequences.get(seq_id)
            return copy.deepcopy(found) if found else None

    def sequences(self) -> list[dict[str, Any]]:
        """Listing items: everything but the steps (only `GET /v1/sequences/{id}` has those)."""
        with self._lock:
            return [
                {k: copy.deepcopy(v) for k, v in s.items() if k != "steps"}
                for s in self._sequences.values()
            ]

    def _newest(self, seq_id: str, contact_id: str) -> dict[str, Any]:
        return self._rows[self._current[(seq_id, contact_id)]]

    def _touch(self, row: dict[str, Any], **changes: Any) -> None:
        row.update(changes)
        row["updated_at"] = max(_z(self._clock()), row["updated_at"])
        row["run_updated_at"] = self._clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")

    def render(self, row: dict[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in row.items() if not k.startswith("_")}

    def filter_view(self, seq_id: str) -> list[dict[str, Any]]:
        """Rows with the hidden flags the listing's filters look at."""
        with self._lock:
            return [copy.deepcopy(r) for r in self._rows.values() if r["sequence_id"] == seq_id]


def _owns(row: dict[str, Any], seq_id: str, contact_id: str) -> bool:
    return bool(row["sequence_id"] == seq_id and row["contact"]["id"] == contact_id)


def error(status: int, message: str, *, retry_after: float | None = None) -> Response:
    """Whippy's error body; a 429 names its wait in milliseconds."""
    headers = {} if retry_after is None else {RETRY_MS_HEADER: str(round(retry_after * 1000))}
    body = {"errors": [{"description": message}], "status": status}
    return Response.json(body, status=status, headers=headers)


class WhippyApp:
    """Serves a WhippyWorld at `/v1/sequences...` (below `prefix` when mounted)."""

    def __init__(
        self,
        world: WhippyWorld,
        *,
        api_key: str,
        faults: fx.FaultPlan | None = None,
        prefix: str = "",
        max_limit: int = MAX_LIMIT,
        clamp_limit: bool = False,
    ) -> None:
        self.world = world
        self.faults = faults or fx.FaultPlan()
        self.max_limit = max_limit
        self.clamp_limit = clamp_limit
        self._key = api_key.encode()
        self._prefix = prefix

    def __repr__(self) -> str:
        return f"WhippyApp(prefix={self._prefix!r})"

    def handle(self, request: Request) -> Response:
        path = strip_prefix(request.path, self._prefix)
        if path is None:
            return error(404, "Not found")
        given = request.headers.get("x-whippy-key", "")
        if not hmac.compare_digest(given.encode(), self._key):
            return error(401, "Not authenticated")
        parts = [p for p in path.split("/") if p]
        if (
            parts[:2] != ["v1", "sequences"]
            or len(parts) > 4
            or parts[3:] not in ([], ["contacts"])
        ):
            return error(404, "Not found")
        if request.method != "GET":
            return error(405, "Method not allowed")
        listing = len(parts) != 3
        kinds = set(fx.ALL_KINDS if listing else fx.ALL_KINDS - fx.PAGINATION_KINDS)
        if (request.param("offset") or "0") in ("0", ""):
            kinds.discard(fx.FaultKind.REPEAT_CURSOR)  # only a later page can repeat one
        fault = self.faults.take(path, kinds=kinds)
        early = fx.before(fault, error=error, sleep=self.faults.sleep)
        if early is not None:
            return early
        anomaly = fault.kind if fault and fault.kind in fx.PAGINATION_KINDS else None
        if len(parts) == 2:
            response = self._paged(request, None, anomaly)
            id_field = "id"
        elif len(parts) == 3:
            response = self._sequence(parts[2])
            id_field = "data"  # a single resource: dropping `data` is its missing field
        else:
            response = self._paged(request, parts[2], anomaly)
            id_field = "contact"  # what makes a row an enrollment
        return fx.after(fault, response, records_key="data" if listing else None, id_field=id_field)

    def _sequence(self, seq_id: str) -> Response:
        found = self.world.sequence(seq_id)
        if found is None:
            return error(404, "Sequence not found")
        return Response.json({"data": found})

    def _paged(
        self, request: Request, seq_id: str | None, anomaly: fx.FaultKind | None
    ) -> Response:
        limit = _int_param(request, "limit", DEFAULT_LIMIT)
        offset = _int_param(request, "offset", 0)
        if isinstance(limit, Response):
            return limit
        if isinstance(offset, Response):
            return offset
        if limit > self.max_limit and self.clamp_limit:
            limit = self.max_limit
        if not 1 <= limit <= self.max_limit:
            return error(422, f"limit must be between 1 and {self.max_limit}")
        if offset < 0:
            return error(422, "offset must be greater than or equal to 0")
        if seq_id is None:
            rows = self.world.sequences()
            title = request.param("title")
            rows = [r for r in rows if title is None or title.lower() in r["title"].lower()]
        else:
            if self.world.sequence(seq_id) is None:
                return error(404, "Sequence not found")
            filtered = self._filter(request, self.world.filter_view(seq_id))
            if isinstance(filtered, Response):
                return filtered
            rows = [self.world.render(r) for r in filtered]
        total = len(rows)
        if anomaly is fx.FaultKind.EMPTY_PAGE:
            page: list[dict[str, Any]] = []
            total = max(total, offset + 1)  # nothing here, yet the count says there is more
        else:
            if anomaly is fx.FaultKind.REPEAT_CURSOR:
                offset = max(0, offset - limit)  # serve the previous page again
            page = rows[offset : offset + limit]
        body: dict[str, Any] = {"data": page}
        if self.world.include_total:
            body["total"] = total
        return Response.json(body)

    def _filter(
        self, request: Request, rows: list[dict[str, Any]]
    ) -> list[dict[str, Any]] | Response:
        status = request.param("status")
        if status is not None:
            if status not in {s.value for s in StepStatus}:
                return error(422, f"status is invalid: {status}")
            rows = [r for r in rows if r["status"] == status]
        step_ids = request.param("step_ids")
        if step_ids:
            wanted = set(step_ids.split(","))
            rows = [r for r in rows if r["step_id"] in wanted]
        for name in _BOOL_FILTERS:
            raw = request.param(name)
            if raw is None:
                continue
            if raw not in ("true", "false"):
                return error(422, f"{name} must be a boolean")
            field = "_responded" if name == "responded" else name
            rows = [r for r in rows if r.get(field, False) is (raw == "true")]
        return rows


def _int_param(request: Request, name: str, default: int) -> int | Response:
    raw = request.param(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        return error(422, f"{name} must be an integer")
