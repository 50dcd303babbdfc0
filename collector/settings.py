"""Configuration: one TOML file plus QRCOLLECTOR_<SECTION>__<KEY> environment overrides.

Built like the device's (device/settings.py): every section forbids unknown keys, and an error names
the key and where it came from (the file or the environment variable).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import SettingsConfigDict

from collector.reports.config import RetentionSettings, SiteSettings, TraceSettings
from device.errors import ConfigError
from device.settings import ENV_PREFIX as DEVICE_ENV_PREFIX
from device.settings import FileThenEnvironment, TopicSafeId, _describe, read_toml

DEFAULT_CONFIG = Path("/etc/qr-collector/collector.toml")
ENV_PREFIX = "QRCOLLECTOR_"
DEFAULT_DATABASE = "sqlite:////var/lib/qr-collector/collector.db"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerSettings(Section):
    host: str = "localhost"
    port: int = Field(1883, ge=1, le=65535)
    keepalive: int = Field(30, ge=5, le=3600)
    topic_prefix: TopicSafeId = "checkin"
    # Fixed per instance: the broker keeps this client's session (and its queue) across restarts.
    client_id: str = Field(default_factory=lambda: f"qr-collector-{socket.gethostname()}"[:64])
    # "5" (the default) or "3.1.1": paho decodes a 3.1.1 PUBLISH with about a third less CPU (no
    # properties). 3.1.1 has neither session expiry nor Receive Maximum: the session is kept with
    # clean_session false until the broker's `persistent_client_expiration`, and the broker's own
    # `max_inflight_messages` (mosquitto: 20) must then cover a batch or two (see the README).
    protocol: Literal["5", "3.1.1"] = "5"
    # MQTT 5 session expiry: how long the broker queues events while this collector is away.
    session_expiry_s: int = Field(7 * 86400, ge=0, le=0xFFFFFFFF)
    # Several instances share the events as `$share/<group>/...`; empty: this instance gets them all.
    shared_group: str = ""
    # MQTT 5 Receive Maximum: events the broker may send before the first PUBACK. Acks wait for the
    # commit, so this must cover a batch or two, or the broker stalls between commits.
    receive_maximum: int = Field(2000, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)

    @field_validator("shared_group")
    @classmethod
    def _group_is_a_level(cls, group: str) -> str:
        if (group and any(c in group for c in "/+#")) or group.strip() != group:
            raise ValueError("shared_group is one topic level: no '/', '+', '#' or surrounding spaces")
        return group


class AmqpSettings(Section):
    """RabbitMQ: ingest over AMQP 0-9-1 instead of MQTT (the [broker] section then names no server).

    Every instance consumes from one quorum queue bound to the MQTT plugin's topic exchange: a
    replicated, competing-consumer queue that outlives any collector and any one node.
    """

    # amqp://user:password@host:port/vhost, one per cluster node: tried in turn, a lost node's
    # consumers move to the next. Empty: ingest over MQTT ([broker]).
    urls: list[SecretStr] = []
    queue: str = Field("qr-collector", min_length=1, max_length=255)
    exchange: str = "amq.topic"
    # Deliveries in flight before the first ack: acks wait for the commit, so cover two batches.
    prefetch: int = Field(2000, ge=1, le=65535)
    heartbeat_s: int = Field(30, ge=0, le=600)
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)

    @field_validator("urls")
    @classmethod
    def _amqp_scheme(cls, urls: list[SecretStr]) -> list[SecretStr]:
        for url in urls:
            if not url.get_secret_value().startswith(("amqp://", "amqps://")):
                raise ValueError("each amqp url starts amqp:// or amqps://")
        return urls


class DatabaseSettings(Section):
    # sqlite:///relative/or/absolute/path.db or postgresql://user:password@host:port/dbname
    url: SecretStr = SecretStr(DEFAULT_DATABASE)
    # Apply the migrations at start (several instances on one PostgreSQL: they take turns).
    migrate: bool = True

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: SecretStr) -> SecretStr:
        scheme = url.get_secret_value().split(":", 1)[0]
        if scheme not in ("sqlite", "postgresql", "postgres", "postgresql+psycopg"):
            raise ValueError(f"database url must start sqlite:/// or postgresql://, not {scheme}:")
        return url


class IngestSettings(Section):
    batch_max: int = Field(500, ge=1, le=500)
    batch_ms: float = Field(200, gt=0, le=200)
    # A message above this is invalid: no device event comes near it.
    max_payload_bytes: int = Field(65536, ge=1024)


class GapSettings(Section):
    # A missing seq may still be on its way (out of order, a device's backlog): wait before asking.
    settle_s: float = Field(5.0, ge=0)
    retry_min_s: float = Field(10.0, gt=0)
    retry_max_s: float = Field(600.0, gt=0)
    check_s: float = Field(1.0, gt=0)
    # The retained cmd/committed mark is refreshed at most this often per device.
    committed_interval_s: float = Field(1.0, ge=0)


class PresenceSettings(Section):
    # The devices' heartbeat (their broker.heartbeat_s); stale after two of them without news.
    heartbeat_s: float = Field(60.0, gt=0)


class PrivacySettings(Section):
    # X25519 private key (base64, 32 bytes) opening subjects a device sealed for the collector.
    # Readable only by the collector's user (0600); relative paths are relative to the config file.
    private_key_file: Path | None = None
    # The site HMAC key (the devices' site.key) for the pseudonyms of those subjects.
    site_key_file: Path | None = None


class MetricsSettings(Section):
    # Prometheus scrape endpoint; port 0 turns it off.
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Settings(FileThenEnvironment):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    broker: BrokerSettings = BrokerSettings()
    amqp: AmqpSettings = AmqpSettings()
    database: DatabaseSettings = DatabaseSettings()
    ingest: IngestSettings = IngestSettings()
    gaps: GapSettings = GapSettings()
    presence: PresenceSettings = PresenceSettings()
    privacy: PrivacySettings = PrivacySettings()
    metrics: MetricsSettings = MetricsSettings()
    logging: LoggingSettings = LoggingSettings()
    site: SiteSettings = SiteSettings()
    trace: TraceSettings = TraceSettings()
    retention: RetentionSettings = RetentionSettings()

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL: PostgreSQL through psycopg 3 (SQLAlchemy's default would be psycopg2)."""
        url = self.database.url.get_secret_value()
        for scheme in ("postgresql://", "postgres://"):
            if url.startswith(scheme):
                return "postgresql+psycopg://" + url[len(scheme) :]
        return url


def load_settings(path: Path | str = DEFAULT_CONFIG) -> Settings:
    """Reads and validates the configuration; a ConfigError names the file and every bad key."""
    path = Path(path)
    raw = read_toml(path)
    try:
        settings = Settings(**raw)
    except ValidationError as exc:
        # The device's explanation, with our environment prefix.
        raise ConfigError(_describe(exc, path, raw).replace(DEVICE_ENV_PREFIX, ENV_PREFIX)) from None
    return _relative_to(settings, path.parent.resolve())


def _relative_to(settings: Settings, base: Path) -> Settings:
    # Relative paths are relative to the config file, so `make run` works from any directory.
    update: dict[str, Any] = {}
    url = settings.database.url.get_secret_value()
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
        database = settings.database.model_copy(
            update={"url": SecretStr("sqlite:///" + str(base / url[len("sqlite:///") :]))}
        )
        update["database"] = database
    privacy = {
        name: base / value
        for name in ("private_key_file", "site_key_file")
        if (value := getattr(settings.privacy, name)) is not None and not value.is_absolute()
    }
    if privacy:
        update["privacy"] = settings.privacy.model_copy(update=privacy)
    return settings.model_copy(update=update) if update else settings
