"""The naive baseline: what a user would write instead of seqwatch.

One JSON blob per enrollment under its own key, a GET and a SET per enrollment, one POST per
event (no signing, no outbox, no lease, no absence detection). It reads the same API at the
same largest page size, so the difference measured is the state and delivery design.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import redis

from bench.meter import Meter
from bench.synth import API_KEY, PAGE_SIZE

PREFIX = "naive:"
POLLED = "naive-polled"  # marks the first poll done (a silent baseline, like seqwatch's)


def _paged(http: httpx.Client, path: str) -> Iterator[dict[str, Any]]:
    skip = 0
    while True:
        doc = http.get(path, params={"top": PAGE_SIZE, "skip": skip}).raise_for_status().json()
        yield from doc["items"]
        if not doc["hasMore"]:
            return
        skip += len(doc["items"])


def poll_naively(*, peer_url: str, redis_url: str, hook_url: str, meter: Meter) -> dict[str, Any]:
    store = redis.Redis.from_url(redis_url)
    enrollments = events = 0
    http = httpx.Client(base_url=peer_url, headers={"X-API-Key": API_KEY}, timeout=120)
    with http, meter:
        first = not store.exists(POLLED)
        for sequence in list(_paged(http, "/v4/sequences")):
            for contact in _paged(http, f"/v4/sequences/{sequence['id']}/contacts"):
                enrollments += 1
                key = f"{PREFIX}{sequence['id']}:{contact['contactId']}"
                blob = json.dumps(contact, sort_keys=True)
                old = store.get(key)
                store.set(key, blob)
                if first or old == blob.encode():
                    continue
                previous = json.loads(old) if isinstance(old, bytes) else None
                http.post(hook_url, json={"previous": previous, "current": contact})
                events += 1
        store.set(POLLED, "1")
    store.close()
    return {"enrollments": enrollments, "events": events}
