"""The conformance rows run against the local stack, as the end-to-end tests do (their fixtures)."""

from tests.e2e.conftest import client, ingest, org_key

__all__ = ["client", "ingest", "org_key"]
