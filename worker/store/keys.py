"""Every Redis key name, built in one place.

All keys of a source share the hash tag `{<source>}` so a source's state, outbox and lease live
in one Redis Cluster slot and can be written by one atomic script.
"""

from __future__ import annotations

PREFIX = "seqwatch"


def _tag(source: str) -> str:
    return f"{PREFIX}:{{{source}}}"


def state_bucket(source: str, bucket: int) -> str:
    """One hash of the source's stored enrollments (see worker.store.buckets for the layout)."""
    return f"{state_bucket_prefix(source)}{bucket}"


def state_bucket_prefix(source: str) -> str:
    """`state_bucket` less the bucket number (load_page.lua names buckets from it)."""
    return f"{_tag(source)}:st:"


def state_counts(source: str) -> str:
    """Per group of state buckets: how many enrollments they hold (kept by every commit)."""
    return f"{_tag(source)}:stc"


def state_names(source: str) -> str:
    """The source's dictionary of names (sequence ids, contact types) that stored values and
    fields refer to by index (worker/store/state.py); append-only, index -> name."""
    return f"{_tag(source)}:stn"


def legacy_state_pattern(source: str) -> str:
    """SCAN pattern of the fixed 16,384-bucket layout used before the buckets were sized."""
    return f"{_tag(source)}:state:*"


def meta(source: str) -> str:
    """Listing generation, last complete generations, baseline flag, watermark, counters."""
    return f"{_tag(source)}:meta"


def quarantine(source: str) -> str:
    """Per quarantined record: enrollment id -> fingerprint of its error (logged once each)."""
    return f"{_tag(source)}:quarantine"


def provider_memory(source: str) -> str:
    """What a source remembers between polls (detected API version, last deep listing)."""
    return f"{_tag(source)}:provider"


def lease(source: str) -> str:
    return f"{_tag(source)}:lease"


def lease_counter(source: str) -> str:
    return f"{_tag(source)}:lease_seq"


def rate_window(source: str, window: int) -> str:
    """The shared request quota of a source: one GCRA arrival time per quota window."""
    return f"{_tag(source)}:rate:{window}"


def contact(source: str, contact_type: str, contact_id: str) -> str:
    """Looked-up contact fields of one provider record; the type keeps a lead and a contact
    with the same id apart."""
    return f"{_tag(source)}:contact:{contact_type}:{contact_id}"


def events(source: str) -> str:
    """Event documents by id, kept until every destination is done with them."""
    return f"{_tag(source)}:events"


def event_refs(source: str) -> str:
    """Per event id: how many destinations still hold it (pending or dead-lettered)."""
    return f"{_tag(source)}:refs"


def due(source: str, destination: str) -> str:
    """Pending deliveries: zset of event id scored by the next attempt time (ms)."""
    return f"{_tag(source)}:due:{destination}"


def attempts(source: str, destination: str) -> str:
    """Per pending event id: "attempts|first_failure_ms|last_error"."""
    return f"{_tag(source)}:tries:{destination}"


def dead(source: str, destination: str) -> str:
    """Dead letters: zset of event id scored by when it was dead-lettered (ms)."""
    return f"{_tag(source)}:dead:{destination}"


def dead_info(source: str, destination: str) -> str:
    return f"{_tag(source)}:deadinfo:{destination}"


def held(source: str, destination: str) -> str:
    """Per ordering key (enrollment): the id of its delivery being retried; later ones wait."""
    return f"{_tag(source)}:held:{destination}"


def parked(source: str, destination: str) -> str:
    """Per held ordering key: the ids of the deliveries parked behind it, space-separated."""
    return f"{_tag(source)}:parked:{destination}"


def delivery_lock(source: str, destination: str) -> str:
    return f"{_tag(source)}:dlock:{destination}"


def destination_health(destination: str) -> str:
    return f"{PREFIX}:destination:{destination}"


def state_pattern(source: str) -> str:
    """SCAN pattern matching every state bucket of a source."""
    return f"{_tag(source)}:st:*"


def progress(source: str) -> str:
    """The running listing's progress (pages, enrollments, started_at), for `status`."""
    return f"{_tag(source)}:progress"


def schedule() -> str:
    """When each source's next poll is due: hash of source name -> unix seconds."""
    return f"{PREFIX}:schedule"


WORKER_HEALTH_PREFIX = f"{PREFIX}:queue:health-check:"


def worker_health(worker_id: str) -> str:
    """One arq health key per worker (expires unless renewed), so a stopping worker deletes
    only its own."""
    return WORKER_HEALTH_PREFIX + worker_id
