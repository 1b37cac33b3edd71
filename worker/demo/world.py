"""The demo's small world: two simulated accounts and a script of changes over time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from worker.demo.fakes.replyio import ContactStatus, ReplyioWorld
from worker.demo.fakes.unify import UnifyWorld


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    says: str
    apply: Callable[[], None]


def populate_replyio(world: ReplyioWorld) -> None:
    world.add_sequence(100, "Q4 outbound", steps=4)
    world.add_sequence(200, "Webinar follow-up", steps=3)
    people = [
        (100, 12345, "john.doe@company.com", "John", "Doe", "Tech Solutions Inc"),
        (100, 12346, "ana@acme.io", "Ana", "Reyes", "Acme"),
        (100, 12347, "li.wei@globex.com", "Li", "Wei", "Globex"),
        (200, 22001, "sam@initech.com", "Sam", "Lumbergh", "Initech"),
        (200, 22002, "kim@hooli.com", "Kim", "Park", "Hooli"),
    ]
    for seq, cid, email, first, last, company in people:
        world.add_contact(seq, cid, email=email, first=first, last=last, company=company)


def populate_unify(world: UnifyWorld) -> dict[str, str]:
    sequence = world.add_sequence("Enterprise expansion")
    return {
        name: world.enroll(sequence, email=email, first_name=name, last_name=last)
        for name, email, last in [
            ("Maya", "maya@umbrella.com", "Lopez"),
            ("Omar", "omar@stark.io", "Haddad"),
            ("Jen", "jen@wayne.com", "Kim"),
        ]
    }


def script(replyio: ReplyioWorld, unify: UnifyWorld, people: dict[str, str]) -> list[Change]:
    """Changes applied one by one while the real pipeline polls."""
    steps: list[tuple[str, Callable[[], None]]] = [
        ("Reply.io: John moves to step 2", lambda: replyio.advance_step(100, 12345)),
        ("Unify: Maya replies", lambda: unify.update(people["Maya"], is_replied=True)),
        ("Reply.io: Ana is out of office",
         lambda: replyio.set_status(100, 12346, ContactStatus.OUT_OF_OFFICE)),
        ("Reply.io: new contact Priya enrolled",
         lambda: replyio.add_contact(200, 22003, email="priya@vandelay.com", first="Priya",
                                     last="Shah", company="Vandelay")),
        ("Unify: Omar's email bounces", lambda: unify.update(people["Omar"], is_bounced=True)),
        ("Reply.io: Kim opts out", lambda: replyio.opt_out(200, 22002)),
        ("Reply.io: Ana is back", lambda: replyio.set_status(100, 12346, ContactStatus.ACTIVE)),
        ("Unify: Jen finishes the sequence",
         lambda: unify.update(people["Jen"], status="FINISHED")),
        # v3 reports replies (v4 cannot); Ana's auto-reply above was not one.
        ("Reply.io: Sam replies", lambda: replyio.reply(200, 22001)),
        ("Reply.io: Li is removed from the sequence",
         lambda: replyio.remove_contact(100, 12347)),
    ]  # fmt: skip
    return [Change(says=says, apply=apply) for says, apply in steps]
