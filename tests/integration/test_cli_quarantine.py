"""`seqwatch poll` and `status` (text and --json) report quarantined records (SPEC §4, §5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from redis import Redis

from tests.integration._cli_helpers import Fakes, Setup, make_setup, run
from worker.demo.fakes.faults import FaultKind


@pytest.fixture
def setup(tmp_path: Path, fakes: Fakes, redis_url: str) -> Setup:
    Redis.from_url(redis_url).flushall()
    return make_setup(tmp_path, fakes, redis_url=redis_url, sources=("reply",))


def test_status_names_the_quarantined_record_and_field(setup: Setup, fakes: Fakes) -> None:
    assert run(setup, "poll").code == 0
    fakes.reply.advance_step(100, 2)
    # Sequence 100's first contact loses its status: only that record is set aside.
    fakes.reply_faults.add(
        FaultKind.MISSING_FIELD, field="statusInSequence", path_contains="/sequences/100/contacts"
    )
    polled = run(setup, "poll")
    assert polled.code == 0, str(polled)
    assert "1 event, 1 record quarantined" in polled.stdout
    warnings = [json.loads(line) for line in polled.stderr.splitlines() if line.startswith("{")]
    [logged] = [w for w in warnings if w["event"] == "record_quarantined"]
    assert (logged["level"], logged["enrollment_id"], logged["field"]) == (
        "warning", "100:1", "statusInSequence",
    )  # fmt: skip

    text = run(setup, "status")
    assert "1 record quarantined; first: enrollment 100:1, field 'statusInSequence'" in text.stdout
    [source] = json.loads(run(setup, "status", "--json").stdout)["sources"]
    assert source["quarantined"] == 1
    assert source["quarantine_error"]["enrollment_id"] == "100:1"
    assert source["quarantine_error"]["field"] == "statusInSequence"
    assert "statusInSequence" in source["quarantine_error"]["error"]

    assert run(setup, "poll").code == 0  # the record is fine again
    [source] = json.loads(run(setup, "status", "--json").stdout)["sources"]
    assert (source["quarantined"], source["quarantine_error"]) == (0, None)
