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
        default=None, description="External MQTT broker; unset = embedded.",
        validation_alias=AliasChoices("BESS_MQTT_HOST", "BESS_MQTT_BROKER"),
    )
    mqtt_port: int = 1883

    metrics_host: str = Field(default="127.0.0.1", description="Bind address of workers' /metrics.")
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
    clock_interval_s: float = Field(
        default=60.0, gt=0, description="Live sources: seconds between wall-clock ticks."
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
    policy_file: Path = Field(default=PROJECT_ROOT / "policy" / "policy.yaml",
                              description="Pre-trade risk policy (rates, site limits).")
    ema_span: int = Field(default=24, ge=1, description="EMA span N (alpha = 2/(N+1)).")
    vwap_window_s: int = Field(default=24 * 3600, ge=1, description="VWAP window, seconds.")

    # EMS (README "EMS"): forecasting and dispatch
    ems_file: Path = Field(default=PROJECT_ROOT / "policy" / "ems.yaml",
                           description="Sites, batteries and strategies (ems.yaml).")
    forecast_interval_s: int = Field(
        default=3600, ge=60, description="Seconds of event time between price forecasts."
    )
    forecast_training_days: int = Field(default=56, ge=1, description="History the models see.")
    forecast_prophet: bool = Field(default=True, description="Include Prophet in the ensemble.")
    ems_order_tolerance_eur_mwh: float = Field(
        default=10.0, ge=0, description="Auto-trading limit price: plan price +- this (EUR/MWh)."
    )

    # telemetry (README "Telemetry"); BESS_MODBUS_* / BESS_MQTT_* as the predecessor's (seed 002)
    sites: str = Field(default="site-1", description="Comma-separated site ids.")
    modbus_enabled: bool = True
    modbus_host: str | None = Field(default=None, description="One Modbus device (predecessor).")
    modbus_port: int = 502
    modbus_unit_id: int = 1
    modbus_profile: str = Field(default="default", description="Profile name or YAML path.")
    modbus_site: str | None = Field(default=None, description="Site of BESS_MODBUS_HOST.")
    modbus_interval_s: float = Field(
        default=1.0, gt=0, description="Poll interval, seconds.",
        validation_alias=AliasChoices("BESS_MODBUS_INTERVAL_S", "BESS_UPDATE_INTERVAL"),
    )
    modbus_timeout_s: float = Field(default=1.0, gt=0)
    modbus_offline_after: int = Field(default=3, ge=1, description="Failed polls until offline.")
    modbus_devices: str | None = Field(
        default=None, description="JSON list of {site, device_id, host, port, unit_id, "
                                  "profile, interval_s} (several devices)."
    )
    modbus_profile_dir: Path | None = Field(default=None, description="Extra profile files.")
    mqtt_enabled: bool = True
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_tls: bool = False
    mqtt_ca_file: Path | None = None
    mqtt_tls_insecure: bool = False
    mqtt_prefix: str = Field(default="bess", description="Per-site and discovery topic prefix.")
    mqtt_topic_soc: str = "bess/soc"
    mqtt_topic_power: str = "bess/power"
    mqtt_topic_temp: str = "bess/temperature"
    mqtt_site: str | None = Field(
        default=None, description="Site of the predecessor topics and of discovered sensors "
                                  "without a site (default: the first of BESS_SITES)."
    )
    mqtt_silent_after_s: float = Field(
        default=30.0, gt=0, description="An MQTT device silent this long is reported offline."
    )
    api_key: SecretStr | None = Field(
        default=None, description="REST ingestion key (plain; only its hash is kept)."
    )
    api_key_hashes: str = Field(
        default="", description="Comma-separated sha256:<hex> or scrypt:<salt hex>:<hex> hashes."
    )
    setpoint_via: str = Field(default="modbus", description="Default setpoint route.")
    telemetry_stale_after_s: float = Field(default=30.0, gt=0)
    telemetry_aggregation: str = Field(
        default="", description="quantity=method,... (mean, weighted_mean, max, min, sum, median)"
    )
    telemetry_sensor_weights: str = Field(default="", description="sensor_id=weight,...")
    telemetry_outlier_z: float = Field(default=3.5, gt=0, description="Modified z-score limit.")
    sim_modbus_port: int = Field(default=5020, description="First simulator port of `bess up`.")
    simulate: bool = Field(default=True, description="`bess up` runs a simulated battery per site.")

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
    def site_ids(self) -> list[str]:
        return [s.strip() for s in self.sites.split(",") if s.strip()]

    @property
    def mqtt_embedded(self) -> bool:
        return self.mqtt_host is None


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached)."""
    return Settings()
