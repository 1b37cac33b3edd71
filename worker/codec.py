"""Compact encoding of one stored enrollment: the few fields the diff needs, nothing more.

Layout (fields joined by \\x1f): status letter, three flag letters (replied, bounced,
opted_out: t/f/n), step, step_id, raw_status, history ("" or "<birth>.<rev>", with ".m"
appended while the enrollment is missing from one complete listing), sequence id + contact id
only when they cannot be read back from the enrollment id, and the contact's type only where
the provider has one (Zendesk Sell's lead/contact), so an absence-based event still says it.

`birth` and `rev` name this enrollment's place in its own history (see `Stored`); they are
written in the same atomic commit as the state, so they roll back together with it.
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


@dataclass(frozen=True, slots=True, kw_only=True)
class Stored:
    """One stored enrollment.

    `birth` is the source's forget epoch when this record was first stored (a new epoch starts
    whenever stored enrollments are forgotten, so a re-enrollment is a new birth); `rev` counts
    the changes seen since. Together they make event ids a function of the enrollment's own
    stored history, never of a counter a lost write could have moved on. `missed` marks an
    enrollment absent from the last complete listing (a second absence removes it).
    """

    state: State
    sequence_id: str | None = None
    contact_id: str | None = None
    contact_type: str | None = None
    birth: int = 0
    rev: int = 0
    missed: bool = False


def _clean(value: str | None) -> str:
    return "" if value is None else value.replace(SEP, " ").replace(REASON_SEP, " ")


def encode_state(state: State) -> str:
    """The history-free part: equal strings mean nothing the diff watches has changed."""
    flags = _FLAG[state.replied] + _FLAG[state.bounced] + _FLAG[state.opted_out]
    step = "" if state.step is None else str(state.step)
    return SEP.join(
        (
            _STATUS_TO_CODE[state.status] + flags,
            step,
            _clean(state.step_id),
            _clean(state.raw_status)
            + ("" if state.reason is None else REASON_SEP + _clean(state.reason)),
        )
    )


def encode(
    state: State,
    *,
    enrollment_id: str,
    sequence_id: str | None,
    contact_id: str | None,
    contact_type: str | None = None,
    birth: int = 0,
    rev: int = 0,
    missed: bool = False,
) -> str:
    history = f"{birth}.{rev}" if birth or rev or missed else ""
    parts = [encode_state(state), history + (".m" if missed else "")]
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
    return not history.endswith(".m")


def decode(value: str, *, enrollment_id: str) -> Stored:
    parts = value.split(SEP)
    head, step, step_id, raw, history = parts[:5]
    missed = history.endswith(".m")
    birth, _, rev = history.removesuffix(".m").partition(".")
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
        birth=int(birth or 0),
        rev=int(rev or 0),
        missed=missed,
    )
