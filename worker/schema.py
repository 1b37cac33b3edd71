"""The JSON Schema (draft 2020-12) of the event document, for consumers (`seqwatch schema`).

Every document seqwatch sends validates against it: `enrollment.*` changes (SPEC §6), the
opt-in `source.*` health notices and the `seqwatch.test` event of `check --send-test`. The test
suite checks every event it produces against this schema.
"""

from __future__ import annotations

from typing import Any

SCHEMA_ID = "urn:seqwatch:schema:event:1"
_TIME = {"type": "string", "format": "date-time", "pattern": r"Z$"}
_NULLABLE_STR = {"type": ["string", "null"]}
_FLAG = {"type": ["boolean", "null"]}
ENROLLMENT_TYPES = (
    "enrollment.enrolled", "enrollment.step_advanced", "enrollment.replied",
    "enrollment.bounced", "enrollment.opted_out", "enrollment.paused", "enrollment.resumed",
    "enrollment.finished", "enrollment.removed", "enrollment.status_changed",
)  # fmt: skip


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
        "additionalProperties": False,
    }


def _state() -> dict[str, Any]:
    return _object(
        {
            "status": {"enum": ["pending", "active", "paused", "blocked", "finished", "removed"]},
            "raw_status": {"type": "string"},
            "step": {"type": ["integer", "null"]},  # 1-based where the provider numbers steps
            "step_id": _NULLABLE_STR,
            "replied": _FLAG,
            "bounced": _FLAG,
            "opted_out": _FLAG,
        },
        {"reason": _NULLABLE_STR},  # why, where the provider says (e.g. an auto-reply)
    )


def _envelope(type_schema: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type", "timestamp", "data"],
        "properties": {"type": type_schema, "timestamp": _TIME, "data": data},
        "additionalProperties": False,
    }


def event_schema() -> dict[str, Any]:
    enrollment = _envelope(
        {"enum": list(ENROLLMENT_TYPES)},
        _object(
            {
                "id": {"$ref": "#/$defs/event_id"},
                "source": {"type": "string", "minLength": 1},
                "provider": {"type": "string", "minLength": 1},
                "enrollment_id": {"type": "string", "minLength": 1},
                "sequence": _object(
                    {"id": {"type": "string"}, "name": _NULLABLE_STR},
                    # present only where the provider says how many steps the sequence has
                    {"steps_total": {"type": "integer", "minimum": 1}},
                ),
                "contact": _object(
                    {
                        "id": _NULLABLE_STR,
                        "email": _NULLABLE_STR,
                        "name": _NULLABLE_STR,
                        "company": _NULLABLE_STR,
                    },
                    {
                        "phone": _NULLABLE_STR,  # E.164, where the provider has it
                        "type": {"enum": ["lead", "contact", None]},
                    },
                ),
                "previous": {"oneOf": [{"$ref": "#/$defs/state"}, {"type": "null"}]},
                "current": {"oneOf": [{"$ref": "#/$defs/state"}, {"type": "null"}]},
                "detected_at": _TIME,
            }
        ),
    )
    health = _envelope(
        {"type": "string", "pattern": r"^source\.[a-z_]+$"},
        {
            "type": "object",
            "required": ["id", "source", "provider", "detected_at"],
            "properties": {
                "id": {"$ref": "#/$defs/event_id"},
                "source": {"type": "string", "minLength": 1},
                "provider": {"type": "string", "minLength": 1},
                "consecutive_failures": {"type": "integer", "minimum": 0},
                "error": _NULLABLE_STR,
                "detected_at": _TIME,
            },
            # Notices may carry more detail (e.g. counts for source.removals_held).
            "additionalProperties": True,
        },
    )
    test = _envelope(
        {"const": "seqwatch.test"},
        _object(
            {
                "id": {"$ref": "#/$defs/event_id"},
                "destination": {"type": "string", "minLength": 1},
                "message": {"type": "string"},
                "detected_at": _TIME,
            }
        ),
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "seqwatch event",
        "description": (
            "One event document as POSTed to webhook destinations. Deduplicate on data.id: "
            "the same observed change always carries the same id."
        ),
        "oneOf": [
            {"title": "enrollment change", **enrollment},
            {"title": "source health notice", **health},
            {"title": "test event (seqwatch check --send-test)", **test},
        ],
        "$defs": {
            # Opaque: compare as a string (seqwatch mints evt_ + 32 hex digits today).
            "event_id": {"type": "string", "pattern": r"^evt_\S+$"},
            "state": _state(),
        },
    }
