"""Whippy's part of the demo world: one simulated organization and its scripted changes."""

from __future__ import annotations

from collections.abc import Callable

from worker.demo.fakes.whippy import StepStatus, WhippyWorld
from worker.demo.world import Change

SEQUENCE = "Spring tune-up offer"
_PEOPLE = [  # name, email, phone, step the contact is on (1-based)
    ("Dana Whitfield", "dana@brightpath.io", "+14155550101", 1),
    ("Eli Moreno", None, "+14155550102", 2),
    ("Farah Haddad", "farah@northwind.com", "+14155550103", 1),
    ("Gus Larsen", "gus@lakeside.net", "+14155550104", 3),
]


def populate_whippy(world: WhippyWorld) -> None:
    sequence = world.add_sequence(SEQUENCE, steps=3)
    world.add_sequence("Missed-call text back", steps=2)  # no one enrolled yet
    for name, email, phone, step in _PEOPLE:
        world.add_contact(sequence, name=name, email=email, phone=phone, step=step)


def script_whippy(world: WhippyWorld) -> list[Change]:
    """Changes to apply one by one while the pipeline polls (after `populate_whippy`)."""

    def who(name: str) -> tuple[str, str]:
        sequence = next(s["id"] for s in world.sequences() if s["title"] == SEQUENCE)
        contact = next(
            r["contact"]["id"] for r in world.rows(sequence) if r["contact"]["name"] == name
        )
        return sequence, contact

    dana, eli, farah, gus = (who(p[0]) for p in _PEOPLE)
    steps: list[tuple[str, Callable[[], None]]] = [
        ("Whippy: Dana moves to step 2", lambda: world.advance(*dana)),
        ("Whippy: Eli unsubscribes", lambda: world.unsubscribe(*eli)),
        ("Whippy: Farah replies", lambda: world.respond(*farah)),
        ("Whippy: Gus finishes the sequence",
         lambda: world.set_status(*gus, StepStatus.COMPLETE)),
    ]  # fmt: skip
    return [Change(says=says, apply=apply) for says, apply in steps]
