"""The floor: what an unchanged re-poll cannot avoid, measured on the same pages and Redis.

Per page: `orjson.loads` of the body, the fields the diff needs pulled from every record, and
one HMGET of the page's ids from one hash (one round trip). No HTTP (the bodies are fetched
before the measured stretch), no normalization, no diff, no writes. Runs in a measured child.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import redis

from bench.meter import Meter
from bench.synth import API_KEY, PAGE_SIZE

FLOOR_KEY = "floor:state"


def _bodies(http: httpx.Client) -> list[bytes]:
    """Every contact page of the listing, as seqwatch would read it (largest page size)."""
    bodies: list[bytes] = []
    sequences: list[int] = []
    skip = 0
    while True:
        doc = orjson.loads(
            http.get("/v4/sequences", params={"top": PAGE_SIZE, "skip": skip}).content
        )
        sequences += [item["id"] for item in doc["items"]]
        if not doc["hasMore"]:
            break
        skip += PAGE_SIZE
    for sequence in sequences:
        skip = 0
        while True:
            body = http.get(
                f"/v4/sequences/{sequence}/contacts", params={"top": PAGE_SIZE, "skip": skip}
            ).content
            bodies.append(body)
            if not orjson.loads(body)["hasMore"]:
                break
            skip += PAGE_SIZE
    return bodies


def _extract(record: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """The enrollment id and the five fields the Reply.io diff watches."""
    return (
        f"{record['sequenceId']}:{record['contactId']}",
        (record["status"], record["currentStep"], record["isOptedOut"]),
    )


def floor_poll(*, peer_url: str, redis_url: str, meter: Meter) -> dict[str, Any]:
    store = redis.Redis.from_url(redis_url)
    with httpx.Client(base_url=peer_url, headers={"X-API-Key": API_KEY}, timeout=120) as http:
        bodies = _bodies(http)
    # Unmeasured setup: one stored value per enrollment, as long as seqwatch's.
    for body in bodies:
        fields = dict(_extract(r) for r in orjson.loads(body)["items"])
        store.hset(FLOOR_KEY, mapping={k: "afff\x1f3\x1f\x1fActive\x1f" for k in fields})
    enrollments = found = 0
    with meter:
        for body in bodies:
            page = [_extract(r) for r in orjson.loads(body)["items"]]
            values = store.hmget(FLOOR_KEY, [enrollment_id for enrollment_id, _ in page])
            enrollments += len(page)
            found += sum(v is not None for v in values)  # type: ignore[union-attr]
    store.delete(FLOOR_KEY)
    store.close()
    return {"enrollments": enrollments, "found": found, "pages": len(bodies)}
