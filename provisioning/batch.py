"""`qr-provision batch fleet.csv --out DIR`: a bundle per row plus the broker's side of the fleet.

fleet.csv has a header naming some of: kind, plate, location_id, name, address, ward, district,
province (kind defaults to bus when a plate is given, to door otherwise). Output:
  DIR/<location id>/etc/qr-checkin/...   one bundle per good row, the layout of an SD card's root
  DIR/broker/acl, DIR/broker/passwd      mosquitto ACL; password file when no client certificates
  DIR/broker/mosquitto.conf              the broker's configuration for them
  DIR/consumer/...                       the read-only consumer's login (what `verify` uses)
  DIR/collector/...                      the site collector's login, site key and collector.toml
  DIR/devices.csv, DIR/labels.pdf        the manifest and one printable sheet of labels
  DIR/site.key                           the site's HMAC key, when --site-key was not given
A bad row is reported with its line number and gets no bundle; the other rows go ahead.
"""

from __future__ import annotations

import argparse
import csv
import io
import secrets
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from device.errors import ProvisionError
from device.privacy import KEY_BYTES
from device.settings import ADDRESS_FIELDS
from provisioning import collector as collector_toml
from provisioning import hardware, registry
from provisioning.acl import DeviceGrant, acl, mosquitto_conf, new_password, password_file
from provisioning.broker_url import BrokerUrl, parse_broker_url
from provisioning.bundle import PUBLIC, Bundle
from provisioning.certs import DEFAULT_DAYS, Authority, certificate_file, issue_client, load_authority
from provisioning.device_toml import BrokerAccess, Location, read_previous
from provisioning.hardware import Hardware
from provisioning.label import encode, require_label_support, sheets
from provisioning.options import (
    add_broker_arguments,
    add_collector_key_argument,
    add_insecure_argument,
    check_broker_ids,
    check_cleartext,
    check_collector_public_key,
    read_password,
    read_site_key,
    refused,
    write_failed,
)
from provisioning.prepare import (
    DEVICE_ID_PREFIX,
    Material,
    Prepared,
    check_id,
    choose_device_id,
    config_file,
    location_for,
    prepare,
)
from provisioning.single import label_info

COLUMNS = ("kind", "plate", "location_id", "name", *ADDRESS_FIELDS)


@dataclass(frozen=True)
class Fleet:
    """What every row shares."""

    out: Path
    url: BrokerUrl
    topic_prefix: str
    ca_pem: bytes | None
    authority: Authority | None
    days: int
    site_key: bytes
    site_key_generated: bool
    consumer: str
    collector: str
    labels: bool
    hardware: Hardware
    # Privacy mode collector: the devices seal to this key and get no site key.
    collector_public_key: str | None = None
    # Base64 of the collector's private key, when this run generated the pair.
    collector_private_key: str | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "csv", type=Path, metavar="FLEET.csv", help="header: kind,plate,location_id,name[,address,ward,...]"
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (new or empty)")
    add_broker_arguments(parser)
    add_insecure_argument(parser)
    parser.add_argument(
        "--ca", type=Path, metavar="FILE", help="the site CA certificate (broker and devices)"
    )
    parser.add_argument("--ca-key", type=Path, metavar="FILE", help="its key: issue client certificates")
    parser.add_argument(
        "--days", type=int, default=DEFAULT_DAYS, help=f"certificate validity (default {DEFAULT_DAYS})"
    )
    parser.add_argument("--site-key", type=Path, metavar="FILE", help="the site's privacy HMAC key")
    parser.add_argument(
        "--consumer", default="consumer", metavar="USER", help="the read-only consumer's username"
    )
    parser.add_argument(
        "--collector", default="collector", metavar="USER", help="the site collector's username"
    )
    parser.add_argument("--no-labels", action="store_true", help="skip labels.pdf (no segno/Pillow needed)")
    parser.add_argument("--force", action="store_true", help="write into a non-empty --out (device ids kept)")
    add_collector_key_argument(parser)
    parser.add_argument(
        "--collector-keypair",
        action="store_true",
        help="generate the collector's X25519 keypair (private key in collector/ only) and provision "
        "the devices in privacy mode collector",
    )
    hardware.add_arguments(parser)


def main(args: argparse.Namespace) -> int:
    try:
        fleet = setup(args)
        rows, errors = read_fleet(args.csv)
    except ProvisionError as exc:
        return refused(exc)
    prepared: list[tuple[int, Prepared]] = []
    seen_ids: dict[str, int] = {}
    for line, location in rows:
        try:
            item = prepare_row(fleet, location)
            check_broker_ids(args.broker_kind, location=location.id, device=item.device_id)
            if item.device_id in seen_ids:
                raise ProvisionError(
                    f"device id {item.device_id} is already used by row {seen_ids[item.device_id]}"
                )
        except ProvisionError as exc:
            errors.append((line, str(exc)))
            continue
        seen_ids[item.device_id] = line
        prepared.append((line, item))
    for line, message in sorted(errors):
        print(f"row {line}: {message}", file=sys.stderr)
    for note in fleet.hardware.notes():
        print(f"note: {note}", file=sys.stderr)
    if not prepared:
        print("qr-provision: no row could be provisioned. Nothing was written.", file=sys.stderr)
        return 1
    shared = fleet_files(fleet, prepared)
    try:
        for _, item in prepared:
            item.bundle.write()
        shared.write()
    except OSError as exc:
        return write_failed(exc)
    for line, item in prepared:
        loc = item.location
        print(f"row {line}: {item.device_id}  {loc.kind} {loc.id}  config {item.config_hash}")
        warning = registry.record(
            {
                "device_id": item.device_id,
                "location_id": item.location.id,
                "kind": item.location.kind,
                "config_hash": item.config_hash,
                "broker": str(fleet.url),
                "config": str(config_file(item.bundle.root.resolve())),
                **registry.checks(item.settings),
            }
        )
        if warning:
            print(f"note: {warning}", file=sys.stderr)
    print(f"{len(prepared)} bundle(s) in {fleet.out}; broker files in {fleet.out / 'broker'}")
    if fleet.collector_public_key is not None:
        print(
            "privacy mode collector: the devices seal subjects to the collector's key and hold no site "
            f"key; the collector's files are in {fleet.out / 'collector'}"
        )
        if fleet.collector_private_key is None:
            print("note: install the collector's private key as /etc/qr-collector/collector.key (0600)")
    if fleet.site_key_generated:
        later = (
            "the collector's roster import" if fleet.collector_public_key else "the next devices (--site-key)"
        )
        print(f"note: a new site key is in {fleet.out / 'site.key'}: keep it for {later}")
    if errors:
        print(f"{len(errors)} row(s) refused: no bundle was written for them", file=sys.stderr)
    return 1 if errors else 0


def setup(args: argparse.Namespace) -> Fleet:
    if not args.no_labels:
        require_label_support()
    url = parse_broker_url(args.broker)
    topic_prefix = check_id("topic prefix", args.topic_prefix)
    check_broker_ids(args.broker_kind, topic_prefix=topic_prefix)
    consumer, collector = check_login("consumer", args.consumer), check_login("collector", args.collector)
    if consumer == collector:
        # With use_username_as_clientid, `verify` under the collector's name would take over its session.
        raise ProvisionError(f"--consumer and --collector must be two logins, not both {consumer!r}")
    authority = None
    if args.ca_key is not None:
        if args.ca is None:
            raise ProvisionError("--ca-key needs --ca (the CA certificate that goes with it)")
        if not url.tls:
            raise ProvisionError(f"client certificates need a TLS broker URL (mqtts://), not {url}")
        if not 1 <= args.days <= 36500:
            raise ProvisionError(f"--days {args.days} must be between 1 and 36500")
        authority = load_authority(args.ca, args.ca_key)
    if args.ca is not None and not url.tls:
        raise ProvisionError(f"--ca needs a TLS broker URL (mqtts://), not {url}")
    # Without client certificates every login of the fleet is a password.
    check_cleartext(url, authority is None, args.insecure)
    ca_pem = certificate_file(args.ca, "--ca") if args.ca is not None else None
    site_key = read_site_key(args.site_key) if args.site_key else None
    if args.collector_keypair and args.collector_public_key:
        raise ProvisionError("give --collector-public-key or --collector-keypair, not both")
    private_key = public_key = None
    if args.collector_keypair:
        private_key, public_key = collector_toml.new_keypair()
    elif args.collector_public_key:
        public_key = check_collector_public_key(args.collector_public_key)
    out: Path = args.out
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not args.force)):
        raise ProvisionError(f"--out {out} exists and is not an empty folder (pass --force to write into it)")
    return Fleet(
        out=out,
        url=url,
        topic_prefix=topic_prefix,
        ca_pem=ca_pem,
        authority=authority,
        days=args.days,
        site_key=site_key or secrets.token_hex(KEY_BYTES).encode() + b"\n",
        site_key_generated=site_key is None,
        consumer=consumer,
        collector=collector,
        labels=not args.no_labels,
        hardware=hardware.from_arguments(args),
        collector_public_key=public_key,
        collector_private_key=private_key,
    )


def check_login(what: str, name: str) -> str:
    check_id(what, name)
    if name.startswith(DEVICE_ID_PREFIX):
        raise ProvisionError(f"{what} {name!r} must not look like a device id ({DEVICE_ID_PREFIX}...)")
    return name


def read_fleet(path: Path) -> tuple[list[tuple[int, Location]], list[tuple[int, str]]]:
    """Good rows and refused rows, each with its line number in the file (the header is line 1)."""
    try:
        # utf-8-sig: spreadsheets save CSV with a byte-order mark.
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProvisionError(f"{path}: cannot read as UTF-8 CSV ({exc})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip() for name in reader.fieldnames or []]
    unknown = [name for name in header if name not in COLUMNS]
    if unknown or not {"plate", "location_id"} & set(header):
        raise ProvisionError(
            f"{path}: header {','.join(header) or '(empty)'}"
            + (f" has unknown column(s) {', '.join(map(repr, unknown))}" if unknown else " names no location")
            + f": expected some of {','.join(COLUMNS)} with plate or location_id"
        )
    reader.fieldnames = header
    rows: list[tuple[int, Location]] = []
    errors: list[tuple[int, str]] = []
    first_line: dict[str, int] = {}
    for record in reader:
        line = reader.line_num
        values = {key: (value or "").strip() for key, value in record.items() if key is not None}
        if None in record:
            errors.append((line, f"more fields than the header's {len(header)}"))
            continue
        if not any(values.values()):
            continue
        plate, location_id = values.get("plate") or None, values.get("location_id") or None
        kind = values.get("kind") or ("bus" if plate else "door")
        try:
            address = {field: values.get(field) for field in ADDRESS_FIELDS}
            location = location_for(kind, plate, location_id, values.get("name") or None, address)
        except ProvisionError as exc:
            errors.append((line, str(exc)))
            continue
        if location.id in first_line:
            errors.append((line, f"location {location.id} is already in row {first_line[location.id]}"))
            continue
        first_line[location.id] = line
        rows.append((line, location))
    return rows, errors


def prepare_row(fleet: Fleet, location: Location) -> Prepared:
    root = fleet.out / location.id
    previous = read_previous(config_file(root))
    device_id = choose_device_id(previous, None)
    # In mode collector the site key stays with the collector: no device bundle gets it.
    site_key = fleet.site_key if fleet.collector_public_key is None else None
    if fleet.authority is not None:
        issued = issue_client(fleet.authority, device_id, fleet.days)
        broker = BrokerAccess(fleet.url, fleet.topic_prefix, ca=fleet.ca_pem is not None, client_cert=True)
        material = Material(
            fleet.ca_pem, issued.cert_pem, issued.key_pem, site_key, fleet.collector_public_key
        )
    else:
        # A bundle re-made with --force keeps its password: the broker's file need not change for it.
        kept = previous.password if previous is not None and previous.username == device_id else None
        password = kept or new_password()
        broker = BrokerAccess(
            fleet.url, fleet.topic_prefix, fleet.ca_pem is not None, False, device_id, password
        )
        material = Material(
            ca_pem=fleet.ca_pem, site_key=site_key, collector_public_key=fleet.collector_public_key
        )
    return prepare(root, device_id, location, broker, material, fleet.hardware)


def kept_password(out: Path, role: str) -> str | None:
    """The password an earlier run gave this login: the consumer's file, the collector's config."""
    if role == "consumer":
        try:
            return read_password(out / "consumer" / "password")
        except ProvisionError:
            return None
    try:
        broker = tomllib.loads((out / "collector" / "collector.toml").read_text(encoding="utf-8"))["broker"]
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError):
        return None
    password = broker.get("password") if isinstance(broker, dict) else None
    return password if isinstance(password, str) and password else None


def fleet_files(fleet: Fleet, prepared: list[tuple[int, Prepared]]) -> Bundle:
    files = Bundle(fleet.out)
    grants = [DeviceGrant(item.device_id, item.location.id) for _, item in prepared]
    files.add("broker/acl", acl(fleet.topic_prefix, fleet.consumer, grants, fleet.collector).encode(), PUBLIC)
    client_certs = fleet.authority is not None
    conf = mosquitto_conf(
        fleet.url.port, tls=fleet.url.tls, client_certs=client_certs, passwords=not client_certs
    )
    files.add("broker/mosquitto.conf", conf.encode(), PUBLIC)
    logins = [(item.device_id, item.broker.password or "") for _, item in prepared]
    passwords: dict[str, str] = {}
    for role, name in (("consumer", fleet.consumer), ("collector", fleet.collector)):
        if fleet.authority is not None:
            issued = issue_client(fleet.authority, name, fleet.days)
            files.add(f"{role}/client.crt", issued.cert_pem, PUBLIC)
            files.add(f"{role}/client.key", issued.key_pem)
        else:
            # Kept on a --force run, like the devices': a login installed on its host stays valid.
            passwords[role] = kept_password(fleet.out, role) or new_password()
            logins.append((name, passwords[role]))
        if fleet.ca_pem is not None:
            files.add(f"{role}/ca.crt", fleet.ca_pem, PUBLIC)
    if "consumer" in passwords:
        files.add("consumer/password", passwords["consumer"].encode() + b"\n")
    if fleet.authority is None:
        files.add("broker/passwd", password_file(logins).encode())
    access = collector_toml.CollectorAccess(
        fleet.url,
        fleet.topic_prefix,
        fleet.collector,
        fleet.ca_pem is not None,
        passwords.get("collector"),
        private_key=fleet.collector_public_key is not None,
    )
    files.add("collector/collector.toml", collector_toml.render(access).encode())
    if fleet.collector_private_key is not None:
        files.add("collector/collector.key", fleet.collector_private_key.encode() + b"\n")
    if fleet.collector_public_key is not None:
        files.add("collector/collector.pub", fleet.collector_public_key.encode() + b"\n", PUBLIC)
    files.add("collector/site.key", fleet.site_key)
    if fleet.site_key_generated:
        files.add("site.key", fleet.site_key)
    manifest = io.StringIO()
    writer = csv.writer(manifest, lineterminator="\n")
    writer.writerow(
        ["row", "device_id", "kind", "location_id", "name", "config_hash", "bundle", *ADDRESS_FIELDS]
    )
    for line, item in prepared:
        loc = item.location
        address = [getattr(loc, field) for field in ADDRESS_FIELDS]
        writer.writerow(
            [line, item.device_id, loc.kind, loc.id, loc.name, item.config_hash, loc.id, *address]
        )
    files.add("devices.csv", manifest.getvalue().encode(), PUBLIC)
    if fleet.labels:
        files.add("labels.pdf", encode(sheets([label_info(item) for _, item in prepared]), "PDF"), PUBLIC)
    return files
