"""The ingest: the event endpoints, which validate usage events and make them durable in Kafka
before answering 200."""
