"""Fake Zendesk Sell (Reach) API v2: sequences, sequence enrollments, leads and contacts.

Follows providers/README.md §1: `Authorization: Bearer <token>` auth (and a User-Agent, or 400
`invalid_user_agent`), `page`/`per_page` (1..100, default 25) paging, the `{items: [{data,
meta}], meta: {type, count, links}}` envelope, filters `ids`, `resource_ids`, `resource_type`,
`sort_by=field:asc|desc`, `PUT /v2/sequence_enrollments/{id}` with `{"data": {"state"}}` to
stop or resume, and errors `{errors: [{error: {code, message, details}, meta}], meta}`.

Leads and contacts (`GET /v2/leads`, `GET /v2/contacts`, filter `ids`) are served with the
fields of the vendor's own fixtures (zendesk-sell-for-zapier `multipleLeads` /
`multipleContacts`): lead `first_name`, `last_name`, `organization_name`, `email`; contact
`name`, `first_name`, `last_name`, `email`, `is_organization`, `contact_id` (its organisation).

The official enrollments fixture has no `meta.links` at all: that is the default (`links`
False). What the docs leave open is switchable ([inferred]): whether `meta.links` is sent
(`links`) and, with it, `meta.links.next_page` (`next_page_links`); which step-position
fields a record has and whether `updated_at` and the nested sequence's `name` are there (on
the world); the status for an out-of-range `per_page`
(`page_size_error_status`, 400 in the vendor fixture), and an empty 429 body (`empty_429`).
Without next-page links an `empty_page` fault looks exactly like the end of the listing.
"""

from __future__ import annotations

import copy
import hmac
import itertools
import json
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from worker.demo.fakes import faults as fx
from worker.demo.fakes.server import Request, Response, retry_after_value, strip_prefix

MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 25
DEFAULT_LINK_BASE = "https://api.getbase.com"
_SORTABLE = {"id", "created_at", "updated_at"}


class EnrollmentState(StrEnum):
    ACTIVE = "active"
    BLOCKED = "blocked"  # [inferred] literal
    FINISHED = "finished"


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ZendeskSellWorld:
    """Thread-safe state of one Sell account with Reach; tests and the demo mutate it.

    An enrollment sits at a 0-based `position` (the step it is on); the fixture's
    `previously_executed_step_position` and the C# model's `current_step_position` both
    report it, each only where switched on.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] | None = None,
        actor_id: int = 1700155,
        previous_position: bool = True,
        current_position: bool = False,
        updated_at: bool = False,
        sequence_names: bool = True,
    ) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._actor = actor_id
        self.previous_position = previous_position
        self.current_position = current_position
        self.updated_at = updated_at
        self.sequence_names = sequence_names
        self._lock = threading.RLock()
        self._sequences: dict[int, dict[str, Any]] = {}
        self._rows: dict[int, dict[str, Any]] = {}  # insertion (= id) order
        self._ids = itertools.count(92593)
        self._sequence_ids = itertools.count(21124)
        self._resources = itertools.count(1988695232)
        # Leads and contacts by id; a lead and a contact may share an id (separate tables).
        self._people: dict[str, dict[int, dict[str, Any]]] = {"lead": {}, "contact": {}}

    def now(self) -> str:
        return _ts(self._clock())

    def add_sequence(self, name: str, *, steps: int = 3, sequence_id: int | None = None) -> int:
        with self._lock:
            sid = next(self._sequence_ids) if sequence_id is None else sequence_id
            now = self.now()
            self._sequences[sid] = {
                "id": sid, "name": name, "steps_total": steps, "creator_id": self._actor,
                "created_at": now, "updated_at": now,
                "steps": [
                    {"id": sid * 10 + n, "position": n, "delay_from_previous_step": min(n, 1),
                     "delay_from_previous_step_unit": "weekdays", "action_type": "automated_email",
                     "action_properties": {"email_template_id": 398744 + n, "is_reply": n > 0}}
                    for n in range(steps)
                ],
            }  # fmt: skip
            return sid

    def add_lead(
        self,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        email: str | None = None,
        organization_name: str | None = None,
        lead_id: int | None = None,
    ) -> int:
        with self._lock:
            rid = next(self._resources) if lead_id is None else lead_id
            now = self.now()
            self._people["lead"][rid] = {
                "id": rid, "creator_id": self._actor, "owner_id": self._actor,
                "first_name": first_name, "last_name": last_name,
                "organization_name": organization_name, "email": email,
                "status": "New", "created_at": now, "updated_at": now,
            }  # fmt: skip
            return rid

    def add_contact(
        self,
        *,
        name: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        email: str | None = None,
        is_organization: bool = False,
        organization_id: int | None = None,
        contact_id: int | None = None,
    ) -> int:
        """A person (`organization_id`: the organisation contact it belongs to) or, with
        `is_organization`, an organisation. A person's `name` is its full name."""
        with self._lock:
            rid = next(self._resources) if contact_id is None else contact_id
            full = " ".join(p for p in (first_name, last_name) if p) or None
            now = self.now()
            self._people["contact"][rid] = {
                "id": rid, "creator_id": self._actor, "owner_id": self._actor,
                "is_organization": is_organization, "contact_id": organization_id,
                "name": name or full, "first_name": first_name, "last_name": last_name,
                "email": email, "tags": [], "created_at": now, "updated_at": now,
            }  # fmt: skip
            return rid

    def delete_person(self, resource_type: str, resource_id: int) -> None:
        with self._lock:
            self._people[resource_type].pop(resource_id, None)

    def people(self, resource_type: str, ids: set[int] | None) -> list[dict[str, Any]]:
        with self._lock:
            table = self._people[resource_type]
            return [copy.deepcopy(r) for i, r in sorted(table.items()) if ids is None or i in ids]

    def enroll(
        self,
        sequence_id: int,
        *,
        resource_id: int | None = None,
        resource_type: str = "lead",
        enrollment_id: int | None = None,
    ) -> int:
        """A new active enrollment on step 1 (position 0, sent at once as Sell does). Without
        a `resource_id`, a lead or contact with placeholder fields is created for it."""
        with self._lock:
            if sequence_id not in self._sequences:
                raise KeyError(f"unknown sequence {sequence_id}")
            if resource_id is None:
                n = len(self._people["lead"]) + len(self._people["contact"]) + 1
                email = f"person{n}@{resource_type}.example"
                if resource_type == "contact":
                    resource_id = self.add_contact(
                        first_name="Person", last_name=str(n), email=email
                    )
                else:
                    resource_id = self.add_lead(
                        first_name="Person",
                        last_name=str(n),
                        email=email,
                        organization_name=f"Company {n}",
                    )
            eid = next(self._ids) if enrollment_id is None else enrollment_id
            now = self.now()
            self._rows[eid] = {
                "id": eid, "actor_id": self._actor, "resource_type": resource_type,
                "resource_id": resource_id,
                "created_at": now, "updated_at": now, "sequence_id": sequence_id,
                "state": EnrollmentState.ACTIVE.value, "position": 0,
                "finished_at": None, "finished_reason": None, "finished_actor_id": None,
            }  # fmt: skip
            return eid

    def advance_step(self, enrollment_id: int, *, by: int = 1) -> None:
        with self._lock:
            self._rows[enrollment_id]["position"] += by
            self._touch(enrollment_id)

    def set_state(self, enrollment_id: int, state: str, *, reason: str | None = None) -> None:
        """Any `state` string (tests put undocumented ones); finishing stamps finished_*."""
        with self._lock:
            row = self._rows[enrollment_id]
            row["state"] = state
            if state == EnrollmentState.FINISHED:
                row["finished_at"] = self.now()
                row["finished_reason"] = reason
                row["finished_actor_id"] = self._actor if reason == "manual" else None
            elif state in (EnrollmentState.ACTIVE, EnrollmentState.BLOCKED):
                row.update(finished_at=None, finished_reason=None, finished_actor_id=None)
            self._touch(enrollment_id)

    def block(self, enrollment_id: int) -> None:
        self.set_state(enrollment_id, EnrollmentState.BLOCKED)

    def resume(self, enrollment_id: int) -> None:
        self.set_state(enrollment_id, EnrollmentState.ACTIVE)

    def finish(self, enrollment_id: int, *, reason: str | None = "manual") -> None:
        self.set_state(enrollment_id, EnrollmentState.FINISHED, reason=reason)

    def delete(self, enrollment_id: int) -> None:
        """Gone from listings (e.g. its lead was deleted): Sell has no removed state."""
        with self._lock:
            del self._rows[enrollment_id]

    def has(self, enrollment_id: int) -> bool:
        with self._lock:
            return enrollment_id in self._rows

    def enrollment(self, enrollment_id: int) -> dict[str, Any] | None:
        with self._lock:
            row = self._rows.get(enrollment_id)
            return self._render(row) if row else None

    def enrollments(
        self, *, match: Callable[[Mapping[str, Any]], bool] = lambda _: True
    ) -> list[dict[str, Any]]:
        with self._lock:
            return [self._render(r) for r in self._rows.values() if match(r)]

    def sequence(self, sequence_id: int) -> dict[str, Any] | None:
        with self._lock:
            found = self._sequences.get(sequence_id)
            return _sequence_resource(found) if found else None

    def sequences(self) -> list[dict[str, Any]]:
        with self._lock:
            return [_sequence_resource(s) for s in self._sequences.values()]

    def _touch(self, enrollment_id: int) -> None:
        self._rows[enrollment_id]["updated_at"] = self.now()

    def _render(self, row: Mapping[str, Any]) -> dict[str, Any]:
        sequence = self._sequences[row["sequence_id"]]
        summary = {k: v for k, v in sequence.items() if k != "steps"}
        if not self.sequence_names:
            del summary["name"]
        out = {k: v for k, v in row.items() if k not in ("sequence_id", "position", "updated_at")}
        if self.updated_at:
            out["updated_at"] = row["updated_at"]
        out["sequence"] = {"data": summary, "meta": {"type": "sequence"}}
        if self.previous_position:
            out["previously_executed_step_position"] = row["position"]
        if self.current_position:
            out["current_step_position"] = row["position"]
        steps = [self._step(s, row) for s in sequence["steps"]]
        out["enrollment_steps"] = {
            "items": steps,
            "meta": {"type": "collection", "count": len(steps)},
        }
        return copy.deepcopy(out)

    def _step(self, step: Mapping[str, Any], row: Mapping[str, Any]) -> dict[str, Any]:
        """Action statuses beyond completed/cancelled are [inferred]."""
        position, at = step["position"], row["position"]
        if position < at:
            status = "completed"
        elif row["state"] == EnrollmentState.FINISHED:
            status = "cancelled"
        else:
            status = "scheduled" if position == at else "pending"
        action = {
            "status": status,
            "executed_at": row["created_at"] if status == "completed" else None,
            "estimated_execute_at": self.now() if status == "scheduled" else None,
            "failure_reason": None,
        }
        data = {k: v for k, v in step.items() if k != "id"}
        data["overdue"] = False
        data["action"] = {"data": action, "meta": {"type": "action"}}
        return {"data": data, "meta": {"type": "enrollment_step"}}


def _sequence_resource(sequence: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(sequence))
    out["steps"] = {
        "items": [{"data": s, "meta": {"type": "step"}} for s in out["steps"]],
        "meta": {"type": "collection", "count": len(out["steps"])},
    }
    return out


_PEOPLE = {"leads": "lead", "contacts": "contact"}
_KINDS = {"sequences": "sequence", "sequence_enrollments": "sequence_enrollment", **_PEOPLE}
_RESOURCES = frozenset(_KINDS)
_CODES = {400: "invalid_param", 401: "unauthorized", 403: "insufficient_scope", 404: "not_found"}
_CODES |= {422: "invalid", 429: "rate_limit_exceeded", 503: "temporarily_unavailable"}
_PHRASES = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed"}
_PHRASES |= {422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error"}


def error(
    status: int,
    message: str,
    *,
    code: str | None = None,
    details: str | None = None,
    retry_after: float | None = None,
) -> Response:
    """Sell's error envelope; Retry-After only when asked (Sell documents none)."""
    more = {"links": {"more_info": "https://developers.getbase.com/docs/rest/articles/errors"}}
    body = {
        "errors": [
            {
                "error": {
                    "code": code or _CODES.get(status, "server_error"),
                    "message": message,
                    "details": details or message,
                },
                "meta": {"type": "error", **more},
            }
        ],
        "meta": {"type": "errors", "http_status": f"{status} {_PHRASES.get(status, 'Error')}"}
        | {"logref": f"fake-{status}", **more},
    }
    headers = {} if retry_after is None else {"Retry-After": retry_after_value(retry_after)}
    return Response.json(body, status=status, headers=headers)


class ZendeskSellApp:
    """Serves a ZendeskSellWorld at `/v2/...` (below `prefix` when mounted)."""

    def __init__(
        self,
        world: ZendeskSellWorld,
        *,
        api_key: str,
        faults: fx.FaultPlan | None = None,
        prefix: str = "",
        links: bool = False,
        next_page_links: bool = True,
        page_size_error_status: int = 400,
        empty_429: bool = False,
        link_base: str = DEFAULT_LINK_BASE,
    ) -> None:
        self.world = world
        self.faults = faults or fx.FaultPlan()
        self._key = api_key.encode()
        self._prefix = prefix
        self.links = links
        self.next_page_links = next_page_links
        self.people_unavailable = False  # leads/contacts answer 503 (a failed lookup)
        self.page_size_error_status = page_size_error_status
        self.empty_429 = empty_429
        self._link_base = link_base.rstrip("/")

    def __repr__(self) -> str:
        return f"ZendeskSellApp(prefix={self._prefix!r})"

    def handle(self, request: Request) -> Response:
        path = strip_prefix(request.path, self._prefix)
        if path is None:
            return error(404, "Resource not found")
        if not request.headers.get("user-agent"):
            return error(400, "User-Agent header is required", code="invalid_user_agent")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), self._key):
            return error(401, "Invalid or missing access token")
        parts = [p for p in path.split("/") if p]
        resource = parts[1] if len(parts) in (2, 3) and parts[0] == "v2" else None
        one = parts[2] if len(parts) == 3 else None
        if resource not in _RESOURCES or (one and not one.isdigit()):
            return error(404, "Resource not found")
        if request.method == "PUT" and resource == "sequence_enrollments" and one:
            return self._put(int(one), request.body)
        if request.method != "GET":
            return error(405, "Method not allowed", code="method_not_allowed")
        kinds = set(fx.ALL_KINDS - fx.PAGINATION_KINDS if one else fx.ALL_KINDS)
        if (request.param("page") or "1") == "1":
            kinds.discard(fx.FaultKind.REPEAT_CURSOR)  # only a later page can point back
        fault = self.faults.take(path, kinds=kinds)
        early = fx.before(fault, error=self._fault_error, sleep=self.faults.sleep)
        if early is not None:
            return early
        if resource in _PEOPLE and self.people_unavailable:
            return self._fault_error(503, "Service temporarily unavailable", retry_after=None)
        if one is not None:
            response = self._one(resource, int(one))
        else:
            anomaly = fault.kind if fault and fault.kind in fx.PAGINATION_KINDS else None
            response = self._list(resource, request, path, anomaly)
        if fault is not None and fault.kind is fx.FaultKind.MISSING_FIELD:
            return _drop_field(response, fault.field or "id", listing=one is None)
        return fx.after(fault, response, records_key=None, id_field="id")

    def _fault_error(self, status: int, message: str, *, retry_after: float | None) -> Response:
        if status == 429 and self.empty_429:
            headers = {} if retry_after is None else {"Retry-After": retry_after_value(retry_after)}
            return Response(status=429, headers=headers)
        return error(status, message, retry_after=retry_after)

    def _one(self, resource: str, item_id: int) -> Response:
        if resource in _PEOPLE:
            people = self.world.people(_PEOPLE[resource], {item_id})
            found, kind = (people[0] if people else None), _PEOPLE[resource]
        elif resource == "sequences":
            found, kind = self.world.sequence(item_id), "sequence"
        else:
            found, kind = self.world.enrollment(item_id), "sequence_enrollment"
        if found is None:
            return error(404, "Resource not found")
        return Response.json({"data": found, "meta": {"type": kind}})

    def _put(self, enrollment_id: int, body: bytes) -> Response:
        """Stop (`finished`) or resume (`active`, from blocked) one enrollment."""
        try:
            state = json.loads(body)["data"]["state"]
        except (ValueError, KeyError, TypeError):
            return error(400, "invalid request body", code="invalid_payload")
        if not self.world.has(enrollment_id):
            return error(404, "Resource not found")
        if state == EnrollmentState.FINISHED:
            self.world.finish(enrollment_id, reason="manual")
        elif state == EnrollmentState.ACTIVE:
            self.world.resume(enrollment_id)
        else:
            return error(422, "invalid state", details=f"state: unsupported value '{state}'")
        return self._one("sequence_enrollments", enrollment_id)

    def _list(
        self, resource: str, request: Request, path: str, anomaly: fx.FaultKind | None
    ) -> Response:
        page = _int(request, "page", 1, 1, None)
        per_page = _int(request, "per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)
        if isinstance(page, str):
            return error(400, "invalid request query parameter", details=page)
        if isinstance(per_page, str):
            status = self.page_size_error_status
            return error(
                status, "invalid request query parameter", code="invalid_param", details=per_page
            )
        rows = _filtered(self.world, resource, request)
        if isinstance(rows, str):
            return error(400, "invalid request query parameter", details=rows)
        if anomaly is fx.FaultKind.REPEAT_CURSOR:
            served = page - 1  # the previous page again, still pointing at this one
            items, more = rows[(served - 1) * per_page : served * per_page], True
        elif anomaly is fx.FaultKind.EMPTY_PAGE:
            items, more = [], True  # nothing here, yet "more" to come
        else:
            items = rows[(page - 1) * per_page : page * per_page]
            more = page * per_page < len(rows)
        kind = _KINDS[resource]

        def link(number: int) -> str:
            return f"{self._link_base}{path}?page={number}&per_page={per_page}"

        links = {"self": link(page), "first_page": link(1)}
        if page > 1:
            links["prev_page"] = link(page - 1)
        if more and self.next_page_links:
            links["next_page"] = link(page if anomaly is fx.FaultKind.REPEAT_CURSOR else page + 1)
        meta: dict[str, Any] = {"type": "collection", "count": len(items)}
        if self.links:
            meta["links"] = links
        wrapped = [{"data": r, "meta": {"type": kind}} for r in items]
        return Response.json({"items": wrapped, "meta": meta})


def _int(request: Request, name: str, default: int, lo: int, hi: int | None) -> int | str:
    """The parameter's value, or a `details` text saying why it is invalid."""
    raw = request.param(name)
    if raw is None or raw == "":
        return default
    value = int(raw) if raw.lstrip("-").isdigit() else None
    if value is None or value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        return f"'{name}' must be {bound}, given: {raw}"
    return value


def _ids(raw: str | None) -> set[int] | str | None:
    if raw is None:
        return None
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        return "must be a comma-separated list of ids"
    return {int(p) for p in parts}


def _filtered(world: ZendeskSellWorld, resource: str, request: Request) -> list[Any] | str:
    """Every row matching the query's filters, sorted; or a `details` text for a bad one."""
    ids = _ids(request.param("ids"))
    if isinstance(ids, str):
        return f"'ids' {ids}"
    if resource in _PEOPLE:
        return world.people(_PEOPLE[resource], ids)
    if resource == "sequences":
        name = (request.param("name") or "").lower()
        return [
            s
            for s in world.sequences()
            if (ids is None or s["id"] in ids) and name in s["name"].lower()
        ]
    resource_ids = _ids(request.param("resource_ids"))
    if isinstance(resource_ids, str):
        return f"'resource_ids' {resource_ids}"
    resource_type = request.param("resource_type")
    if resource_type not in (None, "lead", "contact"):
        return f"'resource_type' must be one of lead, contact, given: {resource_type}"

    def match(row: Mapping[str, Any]) -> bool:
        return (
            (ids is None or row["id"] in ids)
            and (resource_ids is None or row["resource_id"] in resource_ids)
            and (resource_type is None or row["resource_type"] == resource_type)
        )

    rows = world.enrollments(match=match)
    field, _, direction = (request.param("sort_by") or "id:asc").partition(":")
    if field not in _SORTABLE or direction not in ("", "asc", "desc"):
        return f"'sort_by' cannot sort by '{field}:{direction}'"
    rows.sort(key=lambda r: (r.get(field) or "", r["id"]), reverse=direction == "desc")
    return rows


def _drop_field(response: Response, field: str, *, listing: bool) -> Response:
    """A 200 whose first record lacks `field` (inside its `data`)."""
    if response.status != 200:
        return response
    payload: Any = json.loads(response.body)
    if listing:
        record = payload["items"][0]["data"] if payload["items"] else None
    else:
        record = payload["data"]
    if record is not None:
        record.pop(field, None)
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(status=200, headers=response.headers, body=body)
