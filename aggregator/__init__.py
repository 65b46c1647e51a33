"""The aggregator: a Faust worker that counts each event exactly once into per-period usage state
in Redis, and archives it in PostgreSQL."""
