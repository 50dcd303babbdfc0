"""Configuration: one TOML file plus QRCHECKIN_<SECTION>__<KEY> environment overrides.

Every section forbids unknown keys, so a typo is an error that names the key and the file instead of
a setting silently ignored on a device nobody will look at for a month.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from device.errors import ConfigError
from device.scan import Direction, SourceKind
from device.selectors import selector_problem

DEFAULT_CONFIG = Path("/etc/qr-checkin/device.toml")
ENV_PREFIX = "QRCHECKIN_"
TOPIC_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def topic_safe(value: str) -> str:
    if not TOPIC_SAFE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not topic-safe: use 1-64 characters of A-Z a-z 0-9 . _ - "
            "(no '/', '+', '#', spaces or NUL)"
        )
    return value


TopicSafeId = Annotated[str, AfterValidator(topic_safe)]
# The kinds of `scanner.sources`: the event's `source` values (device/sources SOURCES reads each).
SourceName = SourceKind


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # Keys added after devices were provisioned: left out of the dump while at their default, so a
    # configuration keeps the hash it had before they existed and `qr-provision verify` records and
    # printed labels stay true across an upgrade.
    ADDED_KEYS: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _without_added_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for key in self.ADDED_KEYS:
            if getattr(self, key) == type(self).model_fields[key].default:
                data.pop(key, None)
        return data


class DeviceSettings(Section):
    id: TopicSafeId
    # Development mode: generates missing keys under the state dir (with a warning) instead of failing.
    dev: bool = False


ADDRESS_FIELDS = ("address", "ward", "district", "province")


class LocationSettings(Section):
    id: TopicSafeId
    kind: Literal["bus", "door", "workshop", "gate", "other"] = "door"
    name: str = ""
    # Where it is, as the province's list of check-in locations asks (a bus: its depot or route).
    address: str = ""
    ward: str = ""
    district: str = ""
    province: str = ""

    @model_serializer(mode="wrap")
    def _without_empty_address(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Unset, they stay out of the dump: the configuration hash of a device without them is the one
        # it had before they existed, so `qr-provision verify` records stay true across an upgrade.
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if k not in ADDRESS_FIELDS or v}


class BrokerSettings(Section):
    host: str = "localhost"
    port: int = Field(1883, ge=1, le=65535)
    # More nodes of a clustered broker, "host" or "host:port" ("[v6]:port"), tried in turn after
    # `host` when a node is lost. A name with several DNS records stands for all of them.
    hosts: list[str] = []
    keepalive: int = Field(30, ge=5, le=3600)
    protocol: Literal["5", "3.1.1"] = "5"
    topic_prefix: TopicSafeId = "checkin"
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    # Our own bound on events handed to paho and not yet acknowledged (paho keeps half of them on the
    # wire and queues the rest): paho's own limit is not honoured after a reconnect.
    inflight_window: int = Field(100, ge=2, le=2000)
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    heartbeat_s: float = Field(60.0, gt=0)

    @field_validator("hosts")
    @classmethod
    def _addresses(cls, hosts: list[str]) -> list[str]:
        for address in hosts:
            split_address(address, 1883)
        return hosts


def split_address(address: str, default_port: int) -> tuple[str, int]:
    """("host", port) of "host", "host:port", "[v6]" or "[v6]:port"; ValueError names what is wrong."""
    text = address.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ValueError(f"broker address {address!r}: expected [v6]:port")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not host or any(c.isspace() for c in host):
        raise ValueError(f"broker address {address!r}: no host")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"broker address {address!r}: port must be 1-65535")
    return host, int(port_text)


class StorageSettings(Section):
    dir: Path = Path("/var/lib/qr-checkin")
    # Undelivered events older than this are dropped (counted, alarmed long before).
    max_age_days: float = Field(21, gt=0)
    # Delivered events stay this long for `history` and then leave the disk.
    delivered_grace_h: float = Field(24, ge=0)
    # Below this much free space the device signals "storage nearly full".
    low_space_mb: float = Field(50, ge=0)


def _selector(selector: str) -> str:
    if problem := selector_problem(selector):
        raise ValueError(problem)
    return selector


Selector = Annotated[str, AfterValidator(_selector)]


class ReaderEntry(Section):
    """One scanner a config line names, with a direction of its own: `{ device = "...", direction =
    "out" }` beside plain selectors, for a Pi with one reader for "in" and one for "out"."""

    device: Selector
    direction: Direction | None = None


def reader_lines(lines: Any) -> Any:
    """Each line as a checked selector or a ReaderEntry, before the union sees it: a bad line then gets
    one clear error under its key instead of one per shape it failed to be."""
    if not isinstance(lines, list):
        return lines  # the field's own type check says what is wrong
    checked: list[str | ReaderEntry] = []
    for line in lines:
        if isinstance(line, dict):
            try:
                line = ReaderEntry.model_validate(line)
            except ValidationError as exc:
                problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                raise ValueError(f"{line!r}: {problems}") from None
        elif isinstance(line, str):
            line = _selector(line)
        checked.append(line)
    return checked


ReaderLines = Annotated[list[str | ReaderEntry], BeforeValidator(reader_lines)]


def directions(lines: list[str | ReaderEntry], default: Direction | None) -> dict[str, Direction | None]:
    """Selector -> the direction its scans carry: the entry's own, else the section's."""
    return {
        line.device if isinstance(line, ReaderEntry) else line: (
            line.direction if isinstance(line, ReaderEntry) and line.direction is not None else default
        )
        for line in lines
    }


class StdinSourceSettings(Section):
    direction: Direction | None = None


class HidSourceSettings(Section):
    # By-id paths, "vendor:product" hex pairs, or name patterns (fnmatch); several at once, each a
    # plain selector or a ReaderEntry with its own direction.
    devices: ReaderLines = Field(default_factory=list)
    layout: Literal["us", "uk", "de", "fr"] = "us"
    terminator: Literal["enter", "tab", "gap"] = "enter"
    # With terminator = "gap": the silence that ends a code.
    gap_ms: float = Field(80, gt=0)
    prefix: str = ""
    suffix: str = ""
    direction: Direction | None = None
    # Hot-plug: how often to look for a configured scanner that is missing (a replug resumes within it).
    rescan_s: float = Field(1.0, gt=0)
    # How often to retry a scanner another process holds, or one that failed to open.
    retry_s: float = Field(5.0, gt=0)

    def readers(self) -> dict[str, Direction | None]:
        """Each configured selector and the direction of its scans."""
        return directions(self.devices, self.direction)


class SerialSourceSettings(Section):
    ADDED_KEYS = ("ports", "terminator", "gap_ms")

    # A by-id path, a device path or a glob such as /dev/ttyACM*, or a USB "vendor:product" pair.
    port: Selector = "/dev/serial/by-id/*"
    # Several scanners, each read on the first port its line names (replaces `port`); a line is a
    # selector or a ReaderEntry with its own direction.
    ports: Annotated[ReaderLines, Field(min_length=1)] | None = None
    baudrate: int = Field(9600, gt=0)
    # "line": a code ends at CR, LF or CRLF; "gap": at `gap_ms` of silence (a scanner without suffix).
    terminator: Literal["line", "gap"] = "line"
    gap_ms: float = Field(80, gt=0)
    direction: Direction | None = None
    rescan_s: float = Field(1.0, gt=0)
    retry_s: float = Field(5.0, gt=0)

    @model_validator(mode="after")
    def _port_or_ports(self) -> SerialSourceSettings:
        if self.ports is not None and "port" in self.model_fields_set:
            raise ValueError("give either scanner.serial.port or scanner.serial.ports, not both")
        return self

    def readers(self) -> dict[str, Direction | None]:
        """Each configured selector and the direction of its scans."""
        return directions(self.ports if self.ports is not None else [self.port], self.direction)


class CameraSourceSettings(Section):
    backend: Literal["picamera2", "opencv", "files"] = "picamera2"
    # For backend "files": an image file, a folder of images, or a video file (replay and tests).
    path: Path | None = None
    index: int = 0
    width: int = Field(640, ge=64)
    height: int = Field(480, ge=64)
    max_fps: float = Field(15, gt=0)
    autofocus: bool = True
    # A code must be out of view this long before it can be read again.
    rearm_s: float = Field(2.0, ge=0)
    # Frames a code must decode in before it is a scan: one frame's misread never becomes a check-in.
    confirm_reads: int = Field(2, ge=1, le=5)
    # Per-frame time for escalation (crops, other binarizer, upscaling) after the cheap decode pass:
    # a cap in milliseconds, and the share of the cheap pass's own measured time (a frame with a code
    # then costs at most ~1 + share cheap passes, whatever the machine).
    decode_budget_ms: float = Field(40.0, gt=0)
    escalation_share: float = Field(1.0, ge=0, le=10)
    # Frames with no evidence of a code spend on average this share of the cheap pass's time on
    # whole-frame probes (denoised, inverted, other binarizer); 0 turns probing off.
    probe_share: float = Field(0.75, ge=0, le=2)
    # Longest exposure, so a card moving past the camera is not smeared (see the README); None: the
    # camera's own auto exposure decides.
    max_exposure_ms: float | None = Field(5.0, gt=0)
    # Part of the view to decode: x, y, width, height as fractions of the full frame (None: all of it).
    roi: tuple[float, float, float, float] | None = None
    # Restart autofocus when a code has been in view this long without decoding (continuous AF sticks).
    refocus_after_s: float = Field(1.0, gt=0)
    direction: Direction | None = None

    @model_validator(mode="after")
    def _files_need_a_path(self) -> CameraSourceSettings:
        if self.backend == "files" and self.path is None:
            raise ValueError("scanner.camera.backend = 'files' needs scanner.camera.path")
        if self.roi is not None:
            x, y, w, h = self.roi
            if not (0 <= x < 1 and 0 <= y < 1 and 0 < w <= 1 - x and 0 < h <= 1 - y):
                raise ValueError(
                    f"scanner.camera.roi = {list(self.roi)} is not inside the frame: give [x, y, width,"
                    " height] as fractions, e.g. [0.25, 0.5, 0.5, 0.5] for the lower middle"
                )
        return self


class ScannerSettings(Section):
    sources: list[SourceName] = Field(default_factory=lambda: list[SourceName](["stdin"]))
    stdin: StdinSourceSettings = StdinSourceSettings()
    hid: HidSourceSettings = HidSourceSettings()
    serial: SerialSourceSettings = SerialSourceSettings()
    camera: CameraSourceSettings = CameraSourceSettings()

    @model_validator(mode="after")
    def _readers_named(self) -> ScannerSettings:
        # Checked here, not only when the source opens, so `check-config` catches it at the depot.
        if "hid" in self.sources and not self.hid.devices:
            raise ValueError(
                "scanner.hid.devices is empty: name the scanner (`qr-checkin scanners` lists them)"
            )
        return self


GPIO_PIN_NAME = re.compile(r"(?:GPIO|BCM)?(\d{1,2})")
GpioDeviceName = Literal["green", "red", "buzzer", "status", "relay"]


def gpio_pin(value: object) -> int | None:
    """A BCM number from 17, "17", "GPIO17" or "BCM17"; false is no device."""
    if isinstance(value, str) and value.strip().lower() in ("none", "false"):
        value = None  # the environment spells "no device" as text
    if value is None or value is False:
        return None
    if value is True:
        raise ValueError("true is not a pin: give a BCM number such as 17, or false for no device")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and (match := GPIO_PIN_NAME.fullmatch(value.strip().upper())):
        number = int(match[1])
    else:
        raise ValueError(
            f'{value!r} is not a pin: use the BCM number (17 or "GPIO17"), not the header position'
        )
    if not 0 <= number <= 27:
        raise ValueError(f"GPIO{number} does not exist: BCM numbers on the header are 0-27")
    return number


def gpio_pin_required(value: object) -> int:
    number = gpio_pin(value)
    if number is None:
        raise ValueError("a pin is required here")
    return number


OptionalGpioPin = Annotated[int | None, BeforeValidator(gpio_pin)]
GpioPin = Annotated[int, BeforeValidator(gpio_pin_required)]


class GpioFeedbackSettings(Section):
    """Pins are BCM numbers (17 or "GPIO17"); false leaves a device out."""

    green: OptionalGpioPin = 17
    red: OptionalGpioPin = 27
    # An RGB LED instead of separate green/red: three pins (red, green, blue).
    rgb: Annotated[list[GpioPin], Field(min_length=3, max_length=3)] | None = None
    rgb_common_anode: bool = False
    buzzer: OptionalGpioPin = 22
    # "active" sounds at its own pitch when powered; "tonal" is a passive piezo driven by PWM (TonalBuzzer).
    buzzer_kind: Literal["active", "tonal"] = "active"
    status: OptionalGpioPin = None
    relay: OptionalGpioPin = None
    relay_pulse_s: float = Field(1.0, gt=0, le=30)
    # Per device; many relay boards switch on a low level. An RGB LED follows rgb_common_anode instead.
    active_high: dict[GpioDeviceName, bool] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _rgb_replaces_pair(cls, data: Any) -> Any:
        # TOML has no null: an RGB LED drops the default green/red pins rather than asking to unset them.
        if isinstance(data, dict) and data.get("rgb") is not None:
            return {"green": None, "red": None, **data}
        return data

    @model_validator(mode="after")
    def _pins_fit_together(self) -> GpioFeedbackSettings:
        if self.rgb is not None and (self.green is not None or self.red is not None):
            raise ValueError("give either rgb or green/red, not both")
        if (self.green is None) != (self.red is None):
            raise ValueError(
                "green and red come as a pair: with one colour, accepted and rejected look alike"
            )
        if self.buzzer_kind == "tonal" and "buzzer" in self.active_high:
            raise ValueError("active_high does not apply to a tonal buzzer (it is driven by PWM)")
        used: dict[int, str] = {}
        for use, pin in self.pins():
            if pin in used:
                raise ValueError(f"GPIO{pin} is wired to both {used[pin]} and {use}")
            used[pin] = use
        return self

    def pins(self) -> list[tuple[str, int]]:
        """Every configured output as (use, BCM number), e.g. ("rgb blue", 13)."""
        uses: list[tuple[str, int | None]] = [("green", self.green), ("red", self.red)]
        if self.rgb is not None:
            uses += list(zip(("rgb red", "rgb green", "rgb blue"), self.rgb, strict=True))
        uses += [("buzzer", self.buzzer), ("status", self.status), ("relay", self.relay)]
        return [(use, pin) for use, pin in uses if pin is not None]


FeedbackKind = Literal["console", "gpio"]


class FeedbackSettings(Section):
    ADDED_KEYS = ("backends",)

    # One device: the key every configuration has had.
    backend: FeedbackKind = "console"
    # Several devices at once (the LEDs and a display), each answering every scan; replaces `backend`.
    backends: list[FeedbackKind] | None = Field(None, min_length=1)
    gpio: GpioFeedbackSettings = GpioFeedbackSettings()

    @model_validator(mode="after")
    def _one_way_to_name_them(self) -> FeedbackSettings:
        if self.backends is not None:
            # Both may stand when they agree (a file's backend, an override adding a second device).
            if "backend" in self.model_fields_set and self.backend not in self.backends:
                raise ValueError(
                    f"feedback.backend = {self.backend!r} is not among feedback.backends = {self.backends}: "
                    "give one of the two"
                )
            if len(set(self.backends)) != len(self.backends):
                raise ValueError(f"feedback.backends names a device twice: {self.backends}")
        return self

    @property
    def devices(self) -> list[FeedbackKind]:
        """The feedback devices to drive, in order."""
        return list(self.backends) if self.backends is not None else [self.backend]


class CheckinSettings(Section):
    duplicate_window_s: float = Field(300, ge=0)
    accept_other: bool = True


class PrivacySettings(Section):
    subject: Literal["hmac", "id", "sealed", "collector"] = "hmac"
    # The per-deployment HMAC key (provisioning installs it). Relative paths are under storage.dir.
    # Not read in mode collector: there the device holds no site key.
    key_file: Path = Path("site.key")
    # Base64 Curve25519 public key of the tracing authority, for subject = "sealed" (optional in
    # "collector").
    authority_public_key: str | None = None
    # Base64 X25519 public key of the site collector, for subject = "collector".
    collector_public_key: str | None = None
    # Where mode collector keeps its duplicate-window key: in memory only (default: systemd's
    # RuntimeDirectory, /run/qr-checkin).
    window_key_dir: Path | None = None


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class FileThenEnvironment(BaseSettings):
    """Settings read from a TOML file (as init values) that the environment overrides: a technician's
    quick fix on the device, an operator's on the collector."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)


class Settings(FileThenEnvironment):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    device: DeviceSettings
    location: LocationSettings
    broker: BrokerSettings = BrokerSettings()
    storage: StorageSettings = StorageSettings()
    scanner: ScannerSettings = ScannerSettings()
    feedback: FeedbackSettings = FeedbackSettings()
    checkin: CheckinSettings = CheckinSettings()
    privacy: PrivacySettings = PrivacySettings()
    logging: LoggingSettings = LoggingSettings()

    @model_validator(mode="after")
    def _sealed_needs_key(self) -> Settings:
        if self.privacy.subject == "sealed" and not self.privacy.authority_public_key:
            raise ValueError("privacy.subject = 'sealed' needs privacy.authority_public_key")
        if self.privacy.subject == "collector" and not self.privacy.collector_public_key:
            raise ValueError("privacy.subject = 'collector' needs privacy.collector_public_key")
        return self

    @property
    def key_path(self) -> Path:
        return self.storage.dir / self.privacy.key_file

    def config_hash(self) -> str:
        """A short stable hash of the effective configuration, secrets included only as hashes."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def redacted(self) -> dict[str, Any]:
        """The effective configuration with secrets hidden (pydantic prints SecretStr as stars)."""
        return json.loads(self.model_dump_json())


def read_toml(path: Path) -> dict[str, Any]:
    """A configuration file's TOML; a ConfigError names the file and what is wrong with it."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: configuration file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def load_settings(path: Path | str = DEFAULT_CONFIG) -> Settings:
    """Reads and validates the configuration; a ConfigError names the file and every bad key."""
    path = Path(path)
    raw = read_toml(path)
    try:
        settings = Settings(**raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, raw)) from None
    _refuse_tls_downgrade(raw, settings, path)
    if not settings.storage.dir.is_absolute():
        # Relative state dirs are relative to the config file, so `make run` works from any cwd.
        storage = settings.storage.model_copy(update={"dir": (path.parent / settings.storage.dir).resolve()})
        settings = settings.model_copy(update={"storage": storage})
    return settings


def _refuse_tls_downgrade(raw: dict[str, Any], settings: Settings, path: Path) -> None:
    # A technician's quick override must not quietly undo the file's TLS: the login and every
    # check-in would then cross the network in clear.
    broker = raw.get("broker")
    if isinstance(broker, dict) and broker.get("tls") is True and not settings.broker.tls:
        raise ConfigError(
            f"{path}: environment {ENV_PREFIX}BROKER__TLS switches off the TLS that the file turns on "
            "(broker.tls = true): the broker password and every check-in would cross the network in "
            "clear. Remove the override, or set tls = false in the file itself if that is really meant"
        )


def _describe(exc: ValidationError, path: Path, raw: dict[str, Any]) -> str:
    lines = [f"{path}: invalid configuration"]
    for err in exc.errors():
        loc = [str(part) for part in err["loc"]]
        key = ".".join(loc) or "(top level)"
        origin = str(path) if _in_file(raw, loc) else f"environment {ENV_PREFIX}{'__'.join(loc).upper()}"
        if err["type"] == "extra_forbidden":
            lines.append(f"  unknown key '{key}' in {origin}")
        elif err["type"] == "missing":
            lines.append(f"  missing key '{key}' in {path}")
        else:
            lines.append(f"  {key}: {err['msg']} (in {origin})")
    return "\n".join(lines)


def _in_file(raw: dict[str, Any], loc: list[str]) -> bool:
    node: Any = raw
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True
