"""Ops: what operators watch: status, source health, listing progress, metrics and probes."""
