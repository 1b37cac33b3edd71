"""Typed pages (worker/sources/typed.py): a Reply.io v4 contact page decodes into typed records
that read exactly as the plain page does, record for record; a page of any other shape decodes
as plain JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.unit.test_peek import _MISSING, ODD, _paths, _with
from tests.unit.test_replyio_normalize import V4, V4_PAGE
from worker.detect.quarantine import Quarantine
from worker.detect.reading import PageReader
from worker.normalize import NORMALIZERS
from worker.sources.base import RawPage
from worker.sources.replyio import CONTACTS_V4
from worker.sources.typed import TypedRecords

EXAMPLES = Path(__file__).resolve().parents[1] / "contract" / "vendor_examples"


def _body(items: list[Any], **envelope: Any) -> bytes:
    return orjson.dumps({"items": items, "hasMore": False, **envelope})


def test_the_vendor_v4_page_decodes_typed_and_equals_the_plain_page() -> None:
    body = (EXAMPLES / "replyio.v4.list-contacts.doc-example.json").read_bytes()
    doc = CONTACTS_V4(body)
    items = doc["items"]
    assert isinstance(items, TypedRecords)
    assert doc["hasMore"] is True
    plain = json.loads(body)["items"]
    assert items == plain
    assert len(items) == 1
    assert items[0] == items[-1] == plain[0]
    assert items[:5] == plain
    assert items.item_key(0) == 12345
    with pytest.raises(IndexError):
        items[1]
    with pytest.raises(IndexError):
        items[-2]


def test_a_declared_record_holds_the_vendor_fields_the_normalizer_reads() -> None:
    body = (EXAMPLES / "replyio.v4.list-contacts.doc-example.json").read_bytes()
    items = CONTACTS_V4(body)["items"]
    assert isinstance(items, TypedRecords)
    plain = json.loads(body)["items"][0]
    declared = items.declared(0)
    assert "statusInSequence" not in declared  # declared but unset: left out
    assert declared == {name: plain[name] for name in declared}
    assert set(declared) < set(plain)  # the vendor sends more than the normalizer reads
    normalize = NORMALIZERS["replyio"]
    assert normalize(declared, page=V4_PAGE) == normalize(plain, page=V4_PAGE)


@pytest.mark.parametrize(
    "body",
    [
        (EXAMPLES / "replyio.v3.list-contacts.doc-example.json").read_bytes(),
        orjson.dumps({"items": [V4], "info": {"hasMore": False}}),  # older envelope
        _body([V4 | {"currentStep": "2"}]),
        _body([V4, [1]]),
    ],
    ids=["v3", "info-envelope", "odd-field", "not-an-object"],
)
def test_a_page_of_another_shape_decodes_as_plain_json(body: bytes) -> None:
    assert CONTACTS_V4(body) == json.loads(body)


def test_a_body_that_is_not_json_raises_as_orjson_does() -> None:
    with pytest.raises(orjson.JSONDecodeError):
        CONTACTS_V4(b'{"items": [')


def _read(records: Any, page: RawPage) -> tuple[list[tuple[str, str]], dict[str, Any], int]:
    reader = PageReader(NORMALIZERS["replyio"], quarantine := Quarantine("typed"))
    read = reader.read(
        RawPage(records=records, where="x", sequence=page.sequence, extra=page.extra), seen=None
    )
    states = list(read.states.items())
    enrollments = read.enrollments(dict(read.states), seen=None)
    return states, enrollments, quarantine.count


def _variants() -> list[dict[str, Any]]:
    found = [V4, V4 | {"statusInSequence": "active"}, V4 | {"contactId": ""}]
    for path in _paths(V4):
        found += [_with(V4, path, odd) for odd in (*ODD, _MISSING)]
    return found


@pytest.mark.parametrize("version", ["v4", "v3"])
def test_a_typed_page_reads_as_the_plain_page(version: str) -> None:
    page = RawPage(records=[], where="x", sequence=V4_PAGE.sequence, extra={"api_version": version})
    typed_pages = 0
    for n, odd in enumerate(_variants()):
        # The odd record between two plain ones: the page keeps its order whichever path it takes.
        items = [V4 | {"contactId": 1}, odd, V4 | {"contactId": 2, "currentStep": n}]
        doc = CONTACTS_V4(_body(items))
        typed_pages += isinstance(doc["items"], TypedRecords)
        assert _read(doc["items"], page) == _read(items, page), odd
    assert typed_pages > 3  # both paths ran
    assert typed_pages < len(_variants())


def test_changed_records_come_back_in_page_order_an_id_listed_twice_as_its_last_record() -> None:
    """Asked for a few ids in the store's order, a typed page and the plain page answer alike:
    in listing order, and an id listed twice as its last record in its first place."""
    page = RawPage(records=[], where="x", sequence=V4_PAGE.sequence, extra={"api_version": "v4"})
    items = [V4 | {"contactId": n, "currentStep": n} for n in range(1, 7)]
    items.insert(4, V4 | {"contactId": 2, "currentStep": 9})  # contact 2 again, further on
    doc = CONTACTS_V4(_body(items))
    assert isinstance(doc["items"], TypedRecords)
    answers = []
    for records in (doc["items"], items):
        reader = PageReader(NORMALIZERS["replyio"], Quarantine("typed"))
        read = reader.read(RawPage(records=records, where="x", sequence=page.sequence), seen=None)
        ids = list(read.states)
        asked = {ids[4]: None, ids[1]: None, ids[0]: None}  # not in page order
        answers.append([(i, e.state.step) for i, e in read.enrollments(asked, seen=None).items()])
    typed, plain = answers
    assert typed == plain
    assert [step for _, step in typed] == [1, 9, 5]
