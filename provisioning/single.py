"""`qr-provision device`: one device, written under the root of its (mounted) SD card."""

from __future__ import annotations

import argparse
from pathlib import Path

from device.errors import ProvisionError
from device.settings import ADDRESS_FIELDS
from provisioning import hardware, registry
from provisioning.acl import DeviceGrant, device_acl
from provisioning.broker_url import parse_broker_url
from provisioning.bundle import PUBLIC, refuse_conflicts, write_atomic
from provisioning.certs import certificate_file, client_identity
from provisioning.device_toml import BrokerAccess, read_previous
from provisioning.label import LabelInfo, label_file, require_label_support
from provisioning.options import (
    add_broker_arguments,
    add_collector_key_argument,
    add_login_arguments,
    check_broker_ids,
    check_cleartext,
    check_collector_public_key,
    check_tls_options,
    read_password,
    read_site_key,
    refused,
    write_failed,
)
from provisioning.prepare import (
    KINDS,
    Material,
    Prepared,
    check_id,
    choose_device_id,
    config_file,
    location_for,
    prepare,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", required=True, choices=KINDS, help="what the device is mounted in or at")
    parser.add_argument("--plate", metavar="PLATE", help='a bus\'s plate number, e.g. "98C-123.45"')
    parser.add_argument("--location-id", metavar="ID", help="a door's or gate's id, e.g. gate-1")
    parser.add_argument("--name", help="a human name for the location (labels, status); default the plate")
    add_address_arguments(parser)
    add_broker_arguments(parser)
    add_login_arguments(parser, cert_help="its CN becomes the device id")
    parser.add_argument(
        "--site-key", type=Path, metavar="FILE", help="the site's privacy HMAC key to install"
    )
    add_collector_key_argument(parser)
    parser.add_argument(
        "--root",
        type=Path,
        default=Path("/"),
        metavar="DIR",
        help="root filesystem to write under (default /)",
    )
    parser.add_argument("--label", type=Path, metavar="FILE", help="also write a label (.png or .pdf)")
    parser.add_argument("--force", action="store_true", help="replace existing files (the device id is kept)")
    hardware.add_arguments(parser)


def add_address_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("where the location is (optional; the province's list of locations)")
    group.add_argument("--address", help='street or hamlet, e.g. "Thôn A"; a bus: its depot or route')
    group.add_argument("--ward", help='ward or commune, e.g. "Xã Hương Gián"')
    group.add_argument("--district", help='e.g. "Huyện Yên Dũng"')
    group.add_argument("--province", help='e.g. "Bắc Giang"')


def main(args: argparse.Namespace) -> int:
    try:
        prepared, label = plan(args)
        conflicts = prepared.bundle.conflicts()
        if label is not None and args.label.exists() and args.label.read_bytes() != label:
            conflicts.append(args.label)
        refuse_conflicts(conflicts, force=args.force)
    except ProvisionError as exc:
        return refused(exc)
    try:
        written = prepared.bundle.write()
        if label is not None:
            write_atomic(args.label, label, PUBLIC)
    except OSError as exc:
        return write_failed(exc)
    warning = registry.record(
        {
            "device_id": prepared.device_id,
            "location_id": prepared.location.id,
            "kind": prepared.location.kind,
            "config_hash": prepared.config_hash,
            "broker": str(prepared.broker.url),
            "config": str(config_file(args.root.resolve())),
            **registry.checks(prepared.settings),
        }
    )
    print_summary(prepared, written, args.label if label is not None else None, [*prepared.notes, warning])
    return 0


def plan(args: argparse.Namespace) -> tuple[Prepared, bytes | None]:
    """Everything validated and rendered in memory; raises ProvisionError before any write."""
    if args.label is not None:
        require_label_support(args.label)
    address = {field: getattr(args, field) for field in ADDRESS_FIELDS}
    location = location_for(args.kind, args.plate, args.location_id, args.name, address)
    parts = hardware.from_arguments(args)
    url = parse_broker_url(args.broker)
    topic_prefix = check_id("topic prefix", args.topic_prefix)
    check_tls_options(url, args.ca, args.cert, args.key)
    ca_pem = certificate_file(args.ca, "--ca") if args.ca else None
    client = client_identity(args.cert, args.key) if args.cert else None
    password = read_password(args.password_file)
    check_cleartext(url, password is not None, args.insecure)
    username = check_username(args.username, password, client is not None)
    site_key = read_site_key(args.site_key) if args.site_key else None
    collector_key = (
        check_collector_public_key(args.collector_public_key) if args.collector_public_key else None
    )
    root = args.root
    if not root.is_dir():
        raise ProvisionError(f"--root {root} is not a directory (is the SD card mounted?)")
    if not (root / "etc").is_dir():
        raise ProvisionError(
            f"--root {root} has no etc/ folder: give the SD card's root filesystem (rootfs), "
            "not its boot partition"
        )
    named = ("--cert", client.name) if client else ("--username", username) if username else None
    device_id = choose_device_id(read_previous(config_file(root)), named)
    check_broker_ids(args.broker_kind, topic_prefix=topic_prefix, location=location.id, device=device_id)
    username = device_id if password is not None else None
    broker = BrokerAccess(url, topic_prefix, ca_pem is not None, client is not None, username, password)
    material = Material(
        ca_pem=ca_pem,
        cert_pem=client.cert_pem if client else None,
        key_pem=client.key_pem if client else None,
        site_key=site_key,
        collector_public_key=collector_key,
    )
    prepared = prepare(root, device_id, location, broker, material, parts)
    label = label_file(label_info(prepared), args.label) if args.label is not None else None
    return prepared, label


def check_username(username: str | None, password: str | None, client_cert: bool) -> str | None:
    """A username the broker's ACL will grant: it is the device id, since the ACL grants per login."""
    if username is None:
        return None
    if client_cert:
        raise ProvisionError(
            "--username does not go with --cert: the broker takes the certificate's CN as the username"
        )
    if password is None:
        raise ProvisionError("--username needs --password-file (the broker refuses anonymous logins)")
    # The ACL grants topics to `user <device id>`: the username names the device, as a CN does.
    return check_id("--username", username)


def label_info(prepared: Prepared) -> LabelInfo:
    return LabelInfo(
        device_id=prepared.device_id,
        location_id=prepared.location.id,
        location_name=prepared.location.name,
        kind=prepared.location.kind,
        broker=str(prepared.broker.url),
        config_hash=prepared.config_hash,
    )


def print_summary(
    prepared: Prepared, written: list[Path], label: Path | None, notes: list[str | None]
) -> None:
    loc = prepared.location
    broker = prepared.broker
    login = (
        "client certificate"
        if broker.client_cert
        else f"user {broker.username}"
        if broker.username
        else "anonymous"
    )
    rows = [
        ("location", f"{loc.kind} {loc.name or loc.id} (id {loc.id})"),
        ("device id", prepared.device_id),
        (
            "broker",
            f"{broker.url} ({login}), topics {broker.topic_prefix}/v1/{loc.id}/{prepared.device_id}/#",
        ),
        ("config hash", prepared.config_hash),
        *(("written", f"{path} ({path.stat().st_mode & 0o777:o})") for path in written),
    ]
    if label is not None:
        rows.append(("label", str(label)))
    print(f"Provisioned {prepared.device_id}:")
    for key, value in rows:
        print(f"  {key:<12} {value}")
    for note in notes:
        if note:
            print(f"  note: {note}")
    print("The broker's ACL must hold its lines (qr-provision batch writes them for a fleet):")
    for line in device_acl(broker.topic_prefix, DeviceGrant(prepared.device_id, loc.id)):
        print(f"  {line}")
    print("Once the device is on, prove it (with the consumer's login):")
    print(f"  qr-provision verify --broker {broker.url} --device {prepared.device_id}")
