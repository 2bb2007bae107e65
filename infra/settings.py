"""Settings of every deployable, read from the environment (prefix ``BESS_``) and ``.env``.

Every service address has an embedded default on loopback; setting the address of an external
service (e.g. ``BESS_KAFKA_BOOTSTRAP=broker:9092``) makes `bess up` use it instead of starting
its own.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
KAFKA_VERSION = "4.1.1"
"""Apache Kafka version fetched from Maven Central and tested (see infra/kafka/pom.xml)."""


class Settings(BaseSettings):
    """All settings; see README "Configuration" for the table of variables."""

    model_config = SettingsConfigDict(
        env_prefix="BESS_", env_file=".env", extra="ignore", frozen=True
    )

    # where embedded services keep their data, logs and pid files
    home: Path = Field(default=PROJECT_ROOT / ".run", description="State dir of `bess up`.")

    kafka_bootstrap: str | None = Field(
        default=None, description="External Kafka bootstrap servers; unset = embedded broker."
    )
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_heap: str = "768m"

    postgres_dsn: SecretStr | None = Field(
        default=None, description="External Postgres DSN; unset = embedded server."
    )
    postgres_port: int = 5433

    mqtt_host: str | None = Field(
        default=None, description="External MQTT broker; unset = embedded."
    )
    mqtt_port: int = 1883

    api_host: str = "127.0.0.1"
    api_port: int = 8000

    log_level: str = "INFO"
    log_json: bool | None = Field(default=None, description="JSON logs; default: when no TTY.")

    # market data
    replay_file: Path = Field(default=PROJECT_ROOT / "data" / "at_hourly_2015_2023.csv")
    replay_speed: float = Field(
        default=3600.0, description="Market seconds per wall second (3600 = 1 market hour/s)."
    )
    replay_start: str = Field(
        default="2023-01-01T00:00Z", description="First delivery hour replayed."
    )
    replay_backfill_hours: int = Field(
        default=168, description="Hours before replay_start published at once (history for charts)."
    )
    entsoe_token: SecretStr | None = Field(
        default=None, description="ENTSO-E API security token.",
        validation_alias=AliasChoices("BESS_ENTSOE_TOKEN", "ENTSO_E_TOKEN"),
    )
    entsoe_url: str = "https://web-api.tp.entsoe.eu/api"
    awattar_url_at: str = "https://api.awattar.at/v1/marketdata"
    awattar_url_de: str = "https://api.awattar.de/v1/marketdata"

    # indicators
    ema_span: int = Field(default=24, ge=1, description="EMA span N (alpha = 2/(N+1)).")
    vwap_window_s: int = Field(default=24 * 3600, ge=1, description="VWAP window, seconds.")

    @property
    def kafka_embedded(self) -> bool:
        return self.kafka_bootstrap is None

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

    @property
    def postgres_embedded(self) -> bool:
        return self.postgres_dsn is None

    @property
    def dsn(self) -> str:
        if self.postgres_dsn is not None:
            return self.postgres_dsn.get_secret_value()
        return f"postgresql://bess@127.0.0.1:{self.postgres_port}/bess"

    @property
    def mqtt_embedded(self) -> bool:
        return self.mqtt_host is None


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached)."""
    return Settings()
