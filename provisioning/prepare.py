"""One device's bundle, prepared in memory: validated ids, the config, its hash, the files beside it.

Shared by `qr-provision device` (one SD card) and `qr-provision batch` (a folder per row), so both
refuse the same things and write the same layout.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from device.errors import ConfigError, ProvisionError
from device.privacy import KEY_BYTES
from device.settings import ADDRESS_FIELDS, TOPIC_SAFE, Settings, load_settings
from provisioning.bundle import PUBLIC, SECRET, Bundle
from provisioning.device_toml import (
    CA,
    CERT,
    CONFIG,
    KEY,
    SITE_KEY,
    BrokerAccess,
    Location,
    Previous,
    render,
)
from provisioning.hardware import Hardware
from provisioning.plates import normalise_plate, plate_name

KINDS = ("bus", "door", "workshop", "gate", "other")
DEVICE_ID_PREFIX = "qrc-"
MAX_NAME = 80
# "Xe đưa đón công nhân, Thôn A, Xã Hương Gián, ..." fits; a pasted paragraph does not.
MAX_ADDRESS = 200


@dataclass(frozen=True)
class Material:
    """Credential bytes installed beside the config (already validated by whoever read them)."""

    ca_pem: bytes | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    site_key: bytes | None = None
    # Privacy mode collector: subjects are sealed to this key and the device gets no site key.
    collector_public_key: str | None = None


@dataclass(frozen=True)
class Prepared:
    device_id: str
    location: Location
    broker: BrokerAccess
    config_hash: str
    bundle: Bundle
    settings: Settings
    notes: list[str] = field(default_factory=list)


def relative(path: PurePosixPath) -> str:
    return str(path.relative_to("/"))


def config_file(root: Path) -> Path:
    return root / relative(CONFIG)


def location_for(
    kind: str,
    plate: str | None,
    location_id: str | None,
    name: str | None,
    address: Mapping[str, str | None] | None = None,
) -> Location:
    """The location a technician described: a bus by its plate, anything else by a topic-safe id;
    optionally where it is (address, ward, district, province)."""
    if kind not in KINDS:
        raise ProvisionError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    if kind == "bus":
        if plate is None or location_id is not None:
            raise ProvisionError("a bus is named by its plate: give --plate (and no --location-id)")
        loc_id, default_name = normalise_plate(plate), plate_name(plate)
    else:
        if location_id is None or plate is not None:
            raise ProvisionError(f"a {kind} is named by --location-id (a plate is only for a bus)")
        loc_id, default_name = check_id("location id", location_id), ""
    place = {
        field: printable(field, value, MAX_ADDRESS if field == "address" else MAX_NAME)
        for field, value in (address or {}).items()
        if field in ADDRESS_FIELDS and value
    }
    name = printable("name", name, MAX_NAME) if name is not None else None
    return Location(id=loc_id, kind=kind, name=name or default_name, **place)


def printable(what: str, value: str, limit: int) -> str:
    value = value.strip()
    if len(value) > limit or not value.isprintable():
        raise ProvisionError(f"{what} {value!r} must be at most {limit} printable characters")
    return value


def check_id(what: str, value: str) -> str:
    # "." and ".." pass the topic rule but would name a parent folder in a batch's output.
    if not TOPIC_SAFE.fullmatch(value) or set(value) == {"."}:
        raise ProvisionError(
            f"{what} {value!r} is not topic-safe: expected 1-64 characters of A-Z a-z 0-9 . _ - "
            "(no '/', '+', '#', spaces; not only dots), e.g. gate-1"
        )
    return value


def choose_device_id(previous: Previous | None, named: tuple[str, str] | None) -> str:
    """Kept from an earlier provisioning; else the name the login gives (a client certificate's CN, a
    --username: the broker's ACL checks that name); else a new `qrc-<8 hex>`."""
    kept = previous.device_id if previous is not None else None
    if kept is not None and not TOPIC_SAFE.fullmatch(kept):
        kept = None
    if named is not None:
        option, name = named
        what = "client certificate CN" if option == "--cert" else option
        check_id(what, name)
        if kept is not None and kept != name:
            fix = (
                f"Issue a certificate with CN={kept}"
                if option == "--cert"
                else f"Give --username {kept} (and its password)"
            )
            raise ProvisionError(
                f"{option} names device {name!r} but this root was provisioned as {kept!r}: the broker "
                f"takes that name as the username its ACL checks, so {kept!r} could not publish. "
                f"{fix}, or remove the old device.toml to adopt {name!r}"
            )
        return name
    return kept or f"{DEVICE_ID_PREFIX}{secrets.token_hex(4)}"


def prepare(
    root: Path,
    device_id: str,
    location: Location,
    broker: BrokerAccess,
    material: Material,
    hardware: Hardware,
) -> Prepared:
    bundle = Bundle(root)
    notes = hardware.notes()
    if material.ca_pem is not None:
        bundle.add(relative(CA), material.ca_pem, PUBLIC)
    if material.cert_pem is not None and material.key_pem is not None:
        bundle.add(relative(CERT), material.cert_pem, PUBLIC)
        bundle.add(relative(KEY), material.key_pem, SECRET)
    if material.collector_public_key is not None:
        if material.site_key is not None:
            raise ProvisionError(
                "--site-key does not go with --collector-public-key: a device holding the site key lets a "
                "stolen card reverse every subject; the key belongs on the collector only"
            )
        if (root / relative(SITE_KEY)).exists():
            # Re-provisioned into mode collector: the old key must leave the card with the old mode.
            bundle.remove(relative(SITE_KEY))
            notes.append(f"removed the site key {root / relative(SITE_KEY)}: mode collector needs none")
    elif material.site_key is not None:
        bundle.add(relative(SITE_KEY), material.site_key, SECRET)
    elif not (root / relative(SITE_KEY)).exists():
        bundle.add(relative(SITE_KEY), secrets.token_hex(KEY_BYTES).encode() + b"\n", SECRET)
        notes.append(
            f"generated a new site key ({root / relative(SITE_KEY)}): every device of one site needs the "
            "same key for its HMAC subjects to match, so pass that file as --site-key for the others"
        )
    text = render(device_id, location, broker, hardware, material.collector_public_key)
    bundle.add(relative(CONFIG), text.encode(), SECRET)
    settings = as_loaded(text)
    return Prepared(device_id, location, broker, settings.config_hash(), bundle, settings, notes)


def as_loaded(config_text: str) -> Settings:
    """The config as the daemon will load it (so its hash is the one the daemon will announce)."""
    with tempfile.TemporaryDirectory(prefix="qr-provision-") as tmp:
        path = Path(tmp) / "device.toml"
        path.write_text(config_text, encoding="utf-8")
        try:
            return load_settings(path)
        except ConfigError as exc:
            raise ProvisionError(f"the configuration would not load on the device: {exc}") from None
