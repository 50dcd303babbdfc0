"""Options and input files shared by the `qr-provision` commands, read and checked the same way."""

from __future__ import annotations

import argparse
import base64
import binascii
import sys
from pathlib import Path

from nacl.public import PublicKey

from device.errors import ConfigError, ProvisionError
from device.privacy import load_key
from provisioning.broker_url import BrokerUrl


def add_broker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--broker", required=True, metavar="URL", help="mqtt://HOST[:1883] or mqtts://HOST[:8883]"
    )
    parser.add_argument("--topic-prefix", default="checkin", metavar="PREFIX", help="default checkin")
    parser.add_argument(
        "--broker-kind",
        choices=BROKER_KINDS,
        default="mosquitto",
        help="the site's broker (default mosquitto); rabbitmq refuses '.' in ids (its MQTT plugin splits"
        " topic levels at dots)",
    )


BROKER_KINDS = ("mosquitto", "emqx", "hivemq", "vernemq", "rabbitmq")


def check_broker_ids(kind: str, **ids: str) -> None:
    """RabbitMQ's MQTT plugin routes a topic as an AMQP routing key, each '/' becoming '.': a '.' inside
    an id splits one topic level into two, the collector's binding no longer matches it and the
    device's events are kept as invalid messages. Such ids are refused before anything is written."""
    if kind != "rabbitmq":
        return
    dotted = [f"{what.replace('_', ' ')} {value!r}" for what, value in ids.items() if "." in value]
    if dotted:
        raise ProvisionError(
            f"{', '.join(dotted)}: a '.' splits a topic level on RabbitMQ (its MQTT plugin turns each '/'"
            " into '.'); use '-' or '_' instead"
        )


def add_login_arguments(parser: argparse.ArgumentParser, *, cert_help: str) -> None:
    parser.add_argument("--ca", type=Path, metavar="FILE", help="CA certificate(s) the broker's chains to")
    parser.add_argument("--cert", type=Path, metavar="FILE", help=f"client certificate (PEM): {cert_help}")
    parser.add_argument("--key", type=Path, metavar="FILE", help="private key of --cert (PEM, unencrypted)")
    parser.add_argument("--username", metavar="USER", help="broker username (password brokers)")
    parser.add_argument("--password-file", type=Path, metavar="FILE", help="file holding the broker password")
    add_insecure_argument(parser)


def add_insecure_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow a password over plain mqtt:// (anyone on the network path reads it)",
    )


def check_cleartext(url: BrokerUrl, passwords: bool, insecure: bool) -> None:
    """A password over mqtt:// travels in clear: refused unless the technician says so."""
    if passwords and not url.tls and not insecure:
        raise ProvisionError(
            f"a broker password over {url} would cross the network in clear, readable by anyone on the "
            "path (bus Wi-Fi, a mobile operator's network), who could then publish as this login: use "
            "mqtts://, or pass --insecure on a network you trust"
        )


def check_tls_options(url: BrokerUrl, ca: Path | None, cert: Path | None, key: Path | None) -> None:
    if (cert is None) != (key is None):
        raise ProvisionError("--cert and --key go together")
    if not url.tls and (ca or cert):
        raise ProvisionError(f"--ca, --cert and --key need a TLS broker URL (mqtts://), not {url}")


def read_password(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        password = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProvisionError(f"--password-file {path}: cannot read ({exc})") from None
    if not password or "\n" in password:
        raise ProvisionError(f"--password-file {path} must hold the password on one line")
    return password


def read_site_key(path: Path) -> bytes:
    """The deployment's HMAC key, checked as the daemon checks it; installed with a trailing newline."""
    try:
        return load_key(path, create=False) + b"\n"
    except ConfigError as exc:
        raise ProvisionError(f"--site-key: {exc}") from None
    except OSError as exc:
        raise ProvisionError(f"--site-key {path}: cannot read ({exc.strerror})") from None


def add_collector_key_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--collector-public-key",
        metavar="BASE64",
        help="the site collector's X25519 public key: devices seal subjects to it and hold no site key "
        "(privacy mode collector, the default when given)",
    )


def check_collector_public_key(typed: str) -> str:
    """A base64 X25519 public key, as the device will read it; returned in canonical base64."""
    try:
        raw = base64.b64decode(typed.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != PublicKey.SIZE:
        raise ProvisionError(
            f"--collector-public-key {typed[:60]!r} is not the base64 of a {PublicKey.SIZE}-byte X25519 "
            "public key (collector/collector.pub of a batch with --collector-keypair holds one)"
        )
    return base64.b64encode(raw).decode()


def refused(exc: ProvisionError) -> int:
    print(f"qr-provision: refused: {exc}\nNothing was written.", file=sys.stderr)
    return 2


def write_failed(exc: OSError) -> int:
    # Each file is replaced atomically, so whatever was written is whole; re-running completes it.
    print(
        f"qr-provision: writing failed: {exc}. The files already written are whole; "
        "fix the cause and run again (batch: with --force).",
        file=sys.stderr,
    )
    return 1
