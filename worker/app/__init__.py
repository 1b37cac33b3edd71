"""App: the `seqwatch` command, the daemon and its arq jobs, and per-process wiring."""
