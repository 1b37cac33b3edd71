"""Incarnation names (part of every event id): 64 random bits, never shared by two processes."""

from __future__ import annotations

import os
import re

from worker.store.listing_meta import new_incarnation


def test_names_are_sixteen_hex_digits_and_do_not_repeat() -> None:
    names = [new_incarnation() for _ in range(10_000)]
    assert all(re.fullmatch(r"[0-9a-f]{16}", n) for n in names)
    assert len(set(names)) == len(names)


def test_a_forked_child_draws_other_names_than_its_parent() -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next names, then out without pytest's teardown
        os.write(write_end, " ".join(new_incarnation() for _ in range(3)).encode())
        os._exit(0)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read_end, "rb") as pipe:
        child = pipe.read().decode().split()
    parent = [new_incarnation() for _ in range(3)]
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(child) == 3
    assert not set(child) & set(parent)
