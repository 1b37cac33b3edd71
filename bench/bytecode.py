"""The bytecode cache as an install has it: pip compiles every module it installs, while an
editable checkout run under PYTHONDONTWRITEBYTECODE=1 compiles its modules again in every
process. Benchmarks that time whole processes write it first, so they time the command."""

from __future__ import annotations

import compileall
import importlib

# What seqwatch's commands and the bench's own processes import from this repository.
OWN_PACKAGES = ("worker", "config", "notifiers", "bench")


def compile_bytecode() -> bool:
    """Writes the bytecode cache of OWN_PACKAGES where it is missing or stale; False if some
    module could not be compiled or its cache not written."""
    done = True
    for name in OWN_PACKAGES:
        for directory in importlib.import_module(name).__path__:
            done = bool(compileall.compile_dir(directory, quiet=2)) and done
    return done
