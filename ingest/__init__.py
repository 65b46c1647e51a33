"""The ingest: validates usage events and makes them durable in Kafka before answering 200."""
