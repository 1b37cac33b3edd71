"""An allow-listed source's sequence listing, remembered between polls.

With an explicit allow-list the sequences to list are known without asking: the provider's
sequence listing only labels them (names) and says which are archived. So a poll reuses the
listing a recent poll read (kept in the source's memory, which the poll's opening reads anyway)
instead of spending a request, and a Redis round trip for its quota slot, on every poll.

Stale for at most `MAX_AGE`: a renamed sequence keeps its old name in events, an archived one is
still listed, an unarchived one still skipped (its stored enrollments kept). None of these can
lose or invent an event. Without an allow-list nothing is remembered: the listing is how a poll
finds new sequences, so every poll reads it.
"""

from __future__ import annotations

import math

import orjson

from worker.enrollment import SequenceRef

MAX_AGE = 3600.0  # seconds a remembered listing is used for
Listed = list[tuple[SequenceRef, bool]]  # each sequence, and whether it is archived


def remember(listed: Listed, *, version: str, allow: tuple[str, ...], at: float) -> str:
    """What the source's memory keeps: the listing, and what it was read for and when."""
    return orjson.dumps(
        {
            "version": version,
            "allow": list(allow),
            "at": at,
            "sequences": [[ref.id, ref.name, archived] for ref, archived in listed],
        }
    ).decode()


def recall(raw: str | None, *, version: str, allow: tuple[str, ...], now: float) -> Listed | None:
    """The remembered listing if it was read for this API version and allow-list less than
    `MAX_AGE` ago (a clock that went back counts as stale); None otherwise, or when `raw` is
    not what `remember` wrote (the memory may hold an older release's value)."""
    if raw is None or not allow:
        return None
    try:
        doc = orjson.loads(raw)
        at = float(doc["at"])
        if doc["version"] != version or doc["allow"] != list(allow):
            return None
        if not (math.isfinite(at) and 0.0 <= now - at < MAX_AGE):
            return None
        return [
            (_ref(sequence_id, name), _flag(archived))
            for sequence_id, name, archived in doc["sequences"]
        ]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def _ref(sequence_id: object, name: object) -> SequenceRef:
    if type(sequence_id) is not str or not (name is None or type(name) is str):
        raise TypeError("a remembered id or name is a string")
    return SequenceRef(id=sequence_id, name=name)


def _flag(archived: object) -> bool:
    if type(archived) is not bool:
        raise TypeError("a remembered archived flag is a boolean")
    return archived
