"""The text value format written by versions before the binary one (a frozen copy of its
encoder), to put such values in a real Redis and check today's worker reads them right."""

from __future__ import annotations

from worker.store.codec import FLAG_LETTERS, SEP, Stored, state_text


def _clean(value: str | None) -> str:
    return "" if value is None else value.replace(SEP, " ").replace("\x1e", " ")


def text_value(stored: Stored, *, enrollment_id: str) -> str:
    state = stored.state
    marks = ""
    if stored.missed:
        marks += ".m" if stored.missed == 1 else f".m{stored.missed}"
    if stored.gone:
        marks += ".g"
    if stored.high_step is not None and (state.step is None or stored.high_step > state.step):
        marks += f".h{stored.high_step}"
    hidden = sorted(FLAG_LETTERS[f] for f in stored.fired if getattr(state, f) is not True)
    if hidden:
        marks += ".f" + "".join(hidden)
    life, rev = stored.life, stored.rev
    history = f"{life}.{rev}{marks}" if life or rev or marks else ""
    parts = [state_text(state), history]
    ids = (stored.sequence_id, ":", stored.contact_id)
    if stored.contact_type or enrollment_id.partition(":") != ids:
        parts += [_clean(stored.sequence_id), _clean(stored.contact_id)]
    if stored.contact_type:
        parts.append(_clean(stored.contact_type))
    return SEP.join(parts)
