"""Infrastructure: settings, Kafka/Postgres/MQTT plumbing, logging, metrics, launchers, CLI."""
