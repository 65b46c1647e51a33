"""The `meterline` command on top of the services: the CLI, the local stack launcher, the
benchmarks, the Segment example and organization admin."""
