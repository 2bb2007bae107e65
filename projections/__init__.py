"""Postgres read models, idempotent and rebuildable from the Kafka log."""
