"""Every provider's `peek` agrees with its full normalizer (tests/_peek.py): on the vendors'
own examples, on the records the normalizer tests use, and on each of those with any one field
made odd (a wrong type, empty, missing), where peek must either agree or decline."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._peek import agrees
from tests.unit import test_normalize as reply_unify
from tests.unit import test_replyio_normalize as reply_versions
from tests.unit import test_whippy_normalize as whippy_cases
from tests.unit import test_zendesk_sell_normalize as sell_cases
from worker.enrollment import SequenceRef, State, Status
from worker.sources.base import RawPage
from worker.sources.zendesk_sell import SEQUENCE_NAMES
from worker.store import codec

EXAMPLES = Path(__file__).resolve().parents[1] / "contract" / "vendor_examples"
Case = tuple[str, dict[str, Any], RawPage]


def _example(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text())


def _replyio_examples() -> Iterator[Case]:
    sequence = SequenceRef(id="100", name="Q4")
    for name, version in (
        ("replyio.v4.list-contacts.doc-example.json", "v4"),
        ("replyio.v3.list-contacts.doc-example.json", "v3"),
        ("replyio.v3.extended-state.doc-example.json", "v3"),
    ):
        page = RawPage(records=[], where=name, sequence=sequence, extra={"api_version": version})
        for record in _example(name)["items"]:
            yield "replyio", record, page


def _whippy_examples() -> Iterator[Case]:
    """The webhook samples' step-contact rows, folded as the source folds a contact's rows."""
    doc = _example("whippy.webhook-samples.json")
    rows = [doc["step_contact_created"], doc["step_contact_updated"]]
    steps = {str(row["step_id"]): n for n, row in enumerate(rows)}
    record = {
        "sequence_id": rows[0]["sequence_id"],
        "contact": rows[0]["contact"],
        "rows": rows,
        "steps": steps,
    }
    page = RawPage(records=[], where="whippy", sequence=SequenceRef(id=record["sequence_id"]))
    yield "whippy", record, page
    yield "whippy", record | {"rows": rows[:1], "responded": True}, page


def _cases() -> Iterator[Case]:
    yield from _replyio_examples()
    unify_page = RawPage(records=[], where="unify")
    for record in _example("unify.list-enrollments.doc-example.json")["enrollments"]:
        yield "unify", record, unify_page
    sell = _example("zendesk_sell.enrollments.fixture.json")["items"]
    for extra in ({}, {SEQUENCE_NAMES: {"21124": "Named"}}):
        for item in sell:
            yield "zendesk_sell", item["data"], RawPage(records=[], where="sell", extra=extra)
    yield from _whippy_examples()
    for record in (reply_unify.REPLY_JOHN, reply_unify.REPLY_ANA):
        yield "replyio", record, reply_unify.REPLY_PAGE
    yield "replyio", reply_versions.V3, reply_versions.V3_PAGE
    yield "replyio", reply_versions.V4, reply_versions.V4_PAGE
    for record in (
        reply_unify.UNIFY_FINISHED,
        reply_unify.UNIFY_PAUSED,
        reply_unify.UNIFY_OLD_DOCS,
    ):
        yield "unify", record, reply_unify.UNIFY_PAGE
    for record in (sell_cases.FINISHED, sell_cases.ACTIVE):
        yield "zendesk_sell", record, sell_cases.PAGE
    w = whippy_cases
    for rows in ((w.FINISHED_ROW, w.ACTIVE_ROW), (w.ACTIVE_ROW,), (w.FINISHED_ROW,)):
        yield "whippy", w.folded(*rows), w.PAGE


CASES = list(_cases())
IDS = [f"{provider}-{n}" for n, (provider, _, _) in enumerate(CASES)]


@pytest.mark.parametrize(("provider", "record", "page"), CASES, ids=IDS)
def test_peek_reads_every_example_and_agrees(
    provider: str, record: dict[str, Any], page: RawPage
) -> None:
    assert agrees(provider, record, page), "peek declined a plain record: no fast path"


ODD: tuple[Any, ...] = (None, 0, 7, -1, True, False, "", "x", "Finished", [], {}, 1.5, "7")
_MISSING = object()


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path into the record (objects and lists), two levels of nesting deep."""
    if len(prefix) > 3:
        return
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in items:
        path = (*prefix, key)
        yield path
        if isinstance(child, dict | list) and child:
            yield from _paths(child, path)


def _with(record: dict[str, Any], path: tuple[Any, ...], odd: Any) -> dict[str, Any]:
    changed = copy.deepcopy(record)
    target: Any = changed
    for key in path[:-1]:
        target = target[key]
    if odd is _MISSING:
        del target[path[-1]]
    else:
        target[path[-1]] = odd
    return changed


@pytest.mark.parametrize(("provider", "record", "page"), CASES, ids=IDS)
def test_an_odd_field_is_read_alike_or_left_to_the_full_path(
    provider: str, record: dict[str, Any], page: RawPage
) -> None:
    read = declined = 0
    for path in _paths(record):
        for odd in (*ODD, _MISSING):
            if agrees(provider, _with(record, path, odd), page):
                read += 1
            else:
                declined += 1
    assert read  # both branches really ran on this record
    assert declined


def test_a_record_that_is_not_an_object_is_left_to_the_full_path() -> None:
    for provider, _, page in CASES[:1]:
        assert not agrees(provider, ["not", "an", "object"], page)  # type: ignore[arg-type]


def test_the_fields_key_is_the_state_key() -> None:
    state = State(
        status=Status.PAUSED,
        raw_status="Out\x1fOf\x1eOffice",
        step=3,
        step_id="s\x1f1",
        replied=False,
        bounced=None,
        opted_out=True,
        reason="AutoReplied",
    )
    assert codec.encode_state_fields(
        state.status,
        state.raw_status,
        state.step,
        state.step_id,
        state.replied,
        state.bounced,
        state.opted_out,
        state.reason,
    ) == codec.encode_state(state)
