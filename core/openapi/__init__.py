"""meterline's OpenAPI 3.1 documents, served at `GET /api/v1/openapi.json` without an API key.

`schema` holds the JSON Schema builders, `document` the parts every document shares (Lago's error
bodies, pagination, authentication, the route serving a document), `events` the event routes (the
ingest serves them and the API mounts them), `ops` the operations routes of every HTTP process. The
API's own paths are in `rater.openapi`, the ingest's document in `ingest.openapi`.
"""
