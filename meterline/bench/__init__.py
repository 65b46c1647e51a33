"""`make bench`: every benchmark module `meterline/bench/bench_*.py`, one after another, in one run.

A module defines `ORDER` (an int, lower runs first) and `run(ctx: BenchContext) -> dict[str, float]`
returning its figures (e.g. `ingest_events_per_s` and, measured in the same run, the raw ceiling
`ingest_ceiling_events_per_s`). The runner prints a table and writes `.meterline/bench/latest.json`.
"""
