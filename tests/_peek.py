"""The property every provider's `peek` keeps (worker/normalize): where it reads a record, it
says exactly what the full normalizer says about the record's id, updated_at and state, and
the key it gives is byte for byte what the store compares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.normalize import NORMALIZERS
from worker.normalize.fields import RecordError
from worker.sources.base import RawPage
from worker.store import codec


def agrees(provider: str, record: Mapping[str, Any], page: RawPage) -> bool:
    """Asserts the property on one record; True when `peek` read it (False: it declined)."""
    normalizer = NORMALIZERS[provider]
    assert normalizer.peek is not None
    try:
        enrollment_id, updated_at, fields = normalizer.peek(record, page=page)
    except Exception:
        return False  # declined: the full path decides, as before peek existed
    try:
        enrollment = normalizer(record, page=page)
    except RecordError as exc:
        raise AssertionError(f"peek read a record the normalizer refuses: {exc}") from exc
    assert enrollment_id == enrollment.enrollment_id
    assert updated_at == enrollment.updated_at
    assert codec.encode_state_fields(*fields) == codec.encode_state(enrollment.state)
    assert fields == (
        enrollment.state.status,
        enrollment.state.raw_status,
        enrollment.state.step,
        enrollment.state.step_id,
        enrollment.state.replied,
        enrollment.state.bounced,
        enrollment.state.opted_out,
        enrollment.state.reason,
    )
    return True
