"""Compact encoding of one stored enrollment: the few fields the diff needs, nothing more.

Layout (fields joined by \\x1f): status letter, three flag letters (replied, bounced,
opted_out: t/f/n), step, step_id, raw_status, history, sequence id + contact id only when they
cannot be read back from the enrollment id, and the contact's type only where the provider has
one (Zendesk Sell's lead/contact), so an absence-based event still says it.

History is "" or "<life>.<rev>" followed by optional marks, each ".<letter>[value]":
`m<n>` absent from the last n complete listings (`m` alone = 1), `g` gone (a tombstone: removed
by absence, kept so a re-enrollment starts a new life), `h<n>` the highest step seen in this
life when the current step is lower (a stale page), `f<letters>` flags (r, b, o) that already
fired in this life but are not true now. All of it is written in the same atomic commit as the
state, so it rolls back together with it (see worker/events.py on ids).
An unchanged enrollment is recognised from the raw stored string (`unchanged`), so the common
case of a re-poll costs neither a decode nor a write.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.enrollment import State, Status

SEP = "\x1f"
REASON_SEP = "\x1e"  # inside the raw_status field: "<raw_status>\x1e<reason>"
_STATUS_TO_CODE = {
    Status.PENDING: "p",
    Status.ACTIVE: "a",
    Status.PAUSED: "s",
    Status.BLOCKED: "b",
    Status.FINISHED: "f",
    Status.REMOVED: "r",
}
_CODE_TO_STATUS = {code: status for status, code in _STATUS_TO_CODE.items()}
_FLAG = {True: "t", False: "f", None: "n"}
_UNFLAG = {"t": True, "f": False, "n": None}


FLAG_LETTERS = {"replied": "r", "bounced": "b", "opted_out": "o"}
_LETTER_FLAGS = {letter: flag for flag, letter in FLAG_LETTERS.items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class Stored:
    """One stored enrollment.

    `life` counts this enrollment id's lives in this source (a re-enrollment after a removal
    starts the next); `rev` counts the changes seen in this life. Together they make event ids a
    function of the enrollment's own stored history, never of a counter a lost write could have
    moved on. `missed` counts the consecutive complete listings it was absent from; `gone` marks
    a tombstone. `high_step` and `fired` are the monotonic marks (SPEC §5) where the current
    state no longer shows them.
    """

    state: State
    sequence_id: str | None = None
    contact_id: str | None = None
    contact_type: str | None = None
    life: int = 0
    rev: int = 0
    missed: int = 0
    gone: bool = False
    high_step: int | None = None
    fired: frozenset[str] = frozenset()


def _clean(value: str | None) -> str:
    return "" if value is None else value.replace(SEP, " ").replace(REASON_SEP, " ")


def encode_state(state: State) -> str:
    """The history-free part: equal strings mean nothing the diff watches has changed."""
    return encode_state_fields(
        state.status,
        state.raw_status,
        state.step,
        state.step_id,
        state.replied,
        state.bounced,
        state.opted_out,
        state.reason,
    )


def encode_state_fields(
    status: Status,
    raw_status: str,
    step: int | None,
    step_id: str | None,
    replied: bool | None,
    bounced: bool | None,
    opted_out: bool | None,
    reason: str | None,
) -> str:
    """`encode_state` from a State's fields, in its field order: an unchanged record is
    recognised without building the State (worker/normalize: `peek`)."""
    return SEP.join(
        (
            _STATUS_TO_CODE[status] + _FLAG[replied] + _FLAG[bounced] + _FLAG[opted_out],
            "" if step is None else str(step),
            _clean(step_id),
            _clean(raw_status) + ("" if reason is None else REASON_SEP + _clean(reason)),
        )
    )


def encode(
    state: State,
    *,
    enrollment_id: str,
    sequence_id: str | None,
    contact_id: str | None,
    contact_type: str | None = None,
    life: int = 0,
    rev: int = 0,
    missed: int = 0,
    gone: bool = False,
    high_step: int | None = None,
    fired: frozenset[str] = frozenset(),
) -> str:
    marks = ""
    if missed:
        marks += ".m" if missed == 1 else f".m{missed}"
    if gone:
        marks += ".g"
    if high_step is not None and (state.step is None or high_step > state.step):
        marks += f".h{high_step}"
    hidden = sorted(FLAG_LETTERS[f] for f in fired if getattr(state, f) is not True)
    if hidden:
        marks += ".f" + "".join(hidden)
    history = f"{life}.{rev}{marks}" if life or rev or marks else ""
    parts = [encode_state(state), history]
    if contact_type or enrollment_id.partition(":") != (sequence_id, ":", contact_id):
        parts += [_clean(sequence_id), _clean(contact_id)]
    if contact_type:
        parts.append(_clean(contact_type))
    return SEP.join(parts)


def unchanged(value: str, encoded_state: str) -> bool:
    """True when the stored `value` holds exactly `encoded_state` and needs no write."""
    if (
        not value.startswith(encoded_state)
        or value[len(encoded_state) : len(encoded_state) + 1] != SEP
    ):
        return False
    history = value[len(encoded_state) + 1 :].partition(SEP)[0]
    return not any(mark[:1] in ("m", "g") for mark in history.split(".")[2:])


def decode(value: str, *, enrollment_id: str) -> Stored:
    parts = value.split(SEP)
    head, step, step_id, raw, history = parts[:5]
    life, rev, *marks = history.split(".") if history else ("0", "0")
    missed, gone, high_step, fired = 0, False, None, frozenset[str]()
    for mark in marks:
        kind, rest = mark[:1], mark[1:]
        if kind == "m":
            missed = int(rest or 1)
        elif kind == "g":
            gone = True
        elif kind == "h":
            high_step = int(rest)
        elif kind == "f":
            fired = frozenset(_LETTER_FLAGS[letter] for letter in rest)
    raw_status, has_reason, reason = raw.partition(REASON_SEP)
    state = State(
        status=_CODE_TO_STATUS[head[0]],
        raw_status=raw_status,
        step=int(step) if step else None,
        step_id=step_id or None,
        replied=_UNFLAG[head[1]],
        bounced=_UNFLAG[head[2]],
        opted_out=_UNFLAG[head[3]],
        reason=reason if has_reason else None,
    )
    if len(parts) >= 7:
        sequence_id, contact_id = parts[5] or None, parts[6] or None
    else:
        sequence_id, _, contact_id = enrollment_id.partition(":")
    return Stored(
        state=state,
        sequence_id=sequence_id,
        contact_id=contact_id,
        contact_type=(parts[7] or None) if len(parts) >= 8 else None,
        life=int(life or 0),
        rev=int(rev or 0),
        missed=missed,
        gone=gone,
        high_step=high_step,
        fired=fired,
    )
