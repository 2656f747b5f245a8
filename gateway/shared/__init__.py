"""State several gateway processes share: rate limits, cluster membership and the
fan-out of operator changes, and the `--workers` supervisor. One process on SQLite
needs none of it; server.py picks the backends from `[store]` and `[cache]`."""
