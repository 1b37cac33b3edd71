"""Detect: one poll of a source, its normalized records diffed against stored state into events."""
