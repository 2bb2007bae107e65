"""Local launchers for the embedded default: Apache Kafka (KRaft), PostgreSQL and Mosquitto."""
