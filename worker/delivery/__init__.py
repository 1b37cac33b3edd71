"""Delivery: the outbox of pending events, sends to destinations, retries and dead letters."""
