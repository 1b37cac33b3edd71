"""Store: all that knows Redis: connection, keys, compact state, lease-guarded commit."""
