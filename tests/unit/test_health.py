"""The health transition table: notices on state changes only."""

from __future__ import annotations

import pytest

from worker.events import HealthType
from worker.ops.health import transition


@pytest.mark.parametrize(
    ("was_failing", "failures", "threshold", "expected"),
    [
        (False, 0, 3, None),  # healthy and fine
        (False, 1, 3, None),  # a blip
        (False, 2, 3, None),
        (False, 3, 3, HealthType.FAILING),  # crossed the threshold
        (True, 4, 3, None),  # still failing: no repeat notice
        (True, 9, 3, None),
        (True, 0, 3, HealthType.RECOVERED),
        (False, 1, 1, HealthType.FAILING),  # threshold 1: first failure
        (False, 5, 3, HealthType.FAILING),  # e.g. threshold lowered while failing
    ],
)
def test_transition(
    was_failing: bool, failures: int, threshold: int, expected: HealthType | None
) -> None:
    assert transition(was_failing=was_failing, failures=failures, threshold=threshold) == expected
