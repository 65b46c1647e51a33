"""The local stack: real Kafka, Redis and PostgreSQL started without Docker, plus meterline's processes."""
