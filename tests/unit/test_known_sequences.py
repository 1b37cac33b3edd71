"""An allow-listed source's remembered sequence listing: used only for what it was read for,
while fresh, and never when the memory holds something else."""

from __future__ import annotations

import orjson
import pytest

from worker.enrollment import SequenceRef
from worker.sources.known_sequences import MAX_AGE, recall, remember

LISTED = [(SequenceRef(id="1", name="Live"), False), (SequenceRef(id="2"), True)]
ALLOW = ("1", "2")
AT = 1_000_000.0


def test_what_is_remembered_is_recalled_while_fresh() -> None:
    kept = remember(LISTED, version="v3", allow=ALLOW, at=AT)
    assert recall(kept, version="v3", allow=ALLOW, now=AT) == LISTED
    assert recall(kept, version="v3", allow=ALLOW, now=AT + MAX_AGE - 0.001) == LISTED


@pytest.mark.parametrize(
    ("version", "allow", "now"),
    [
        ("v3", ALLOW, AT + MAX_AGE),  # too old
        ("v3", ALLOW, AT - 1),  # the clock went back
        ("v4", ALLOW, AT),  # another API version
        ("v3", ("2", "1"), AT),  # another allow-list (its order is the listing's order)
        ("v3", ("1",), AT),
        ("v3", (), AT),  # no allow-list: the listing finds new sequences
    ],
)
def test_nothing_is_recalled_for_another_purpose_or_time(
    version: str, allow: tuple[str, ...], now: float
) -> None:
    kept = remember(LISTED, version="v3", allow=ALLOW, at=AT)
    assert recall(kept, version=version, allow=allow, now=now) is None


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "not json",
        "[]",
        '{"version": "v3"}',
        '{"version": "v3", "allow": ["1", "2"], "at": "NaN", "sequences": []}',
        '{"version": "v3", "allow": ["1", "2"], "at": 1000000.0, "sequences": [[1, "x", false]]}',
        '{"version": "v3", "allow": ["1", "2"], "at": 1000000.0, "sequences": [["1", 5, false]]}',
        '{"version": "v3", "allow": ["1", "2"], "at": 1000000.0, "sequences": [["1", null, 0]]}',
        '{"version": "v3", "allow": ["1", "2"], "at": 1000000.0, "sequences": [["1", null]]}',
        '{"version": "v3", "allow": ["1", "2"], "at": 1000000.0, "sequences": {"1": "x"}}',
    ],
)
def test_a_value_that_is_not_a_remembered_listing_is_ignored(raw: str | None) -> None:
    assert recall(raw, version="v3", allow=ALLOW, now=AT) is None


def test_the_remembered_form_holds_only_ids_names_and_flags() -> None:
    doc = orjson.loads(remember(LISTED, version="v3", allow=ALLOW, at=AT))
    assert doc == {
        "version": "v3",
        "allow": ["1", "2"],
        "at": AT,
        "sequences": [["1", "Live", False], ["2", None, True]],
    }
