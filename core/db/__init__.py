"""The PostgreSQL schema and its migrations, the advisory locks, and the catalog queries that every
service reads subscriptions and charges with."""
