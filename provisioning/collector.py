"""The site collector's share of a fleet: its broker login and an example `collector.toml`.

Paths inside the file are the collector host's own (/etc/qr-collector/...), like a device bundle's.
Only keys qr-collector's settings accept are written: `[database] url`; `[broker] host, port, tls,
topic_prefix, client_id` and `username, password` or `cert, key`, and `ca`; `[privacy]
site_key_file` and, for devices in privacy mode collector, `private_key_file`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import PurePosixPath

from nacl.public import PrivateKey

from device import __version__
from provisioning.broker_url import BrokerUrl
from provisioning.device_toml import toml_string

ETC = PurePosixPath("/etc/qr-collector")
CA = ETC / "ca.crt"
CERT = ETC / "client.crt"
KEY = ETC / "client.key"
SITE_KEY = ETC / "site.key"
PRIVATE_KEY = ETC / "collector.key"
DATABASE = "sqlite:////var/lib/qr-collector/collector.db"


@dataclass(frozen=True, slots=True)
class CollectorAccess:
    url: BrokerUrl
    topic_prefix: str
    username: str
    ca: bool
    # None with a client certificate (its CN is the username).
    password: str | None
    private_key: bool


def render(access: CollectorAccess) -> str:
    lines = [
        f"# qr-collector configuration for this site, written by qr-provision {__version__}.",
        f"# Install this folder's files as {ETC}/ on the collector host, readable by the collector's",
        "# user only (this file may hold its broker password). Paths below are that host's.",
        "",
        "[database]",
        "# One site: SQLite. A park or a province: postgresql://USER@HOST/DB",
        f"url = {toml_string(DATABASE)}",
        "",
        "[broker]",
        f"host = {toml_string(access.url.host)}",
        f"port = {access.url.port}",
        f"tls = {'true' if access.url.tls else 'false'}",
        f"topic_prefix = {toml_string(access.topic_prefix)}",
        "# The broker makes a login's client id its username (use_username_as_clientid): one",
        "# instance per login. Another instance (a shared group) needs a login of its own.",
        f"client_id = {toml_string(access.username)}",
    ]
    if access.password is None:
        lines += [
            f"# The certificate's CN ({access.username}) is the username the broker's ACL checks.",
            f"cert = {toml_string(str(CERT))}",
            f"key = {toml_string(str(KEY))}",
        ]
    else:
        lines += [f"username = {toml_string(access.username)}", f"password = {toml_string(access.password)}"]
    if access.ca:
        lines.append(f"ca = {toml_string(str(CA))}")
    lines += ["", "[privacy]", f"site_key_file = {toml_string(str(SITE_KEY))}"]
    if access.private_key:
        lines += [
            "# Opens the subjects the devices seal to the collector (privacy mode collector).",
            f"private_key_file = {toml_string(str(PRIVATE_KEY))}",
        ]
    return "\n".join(lines) + "\n"


def new_keypair() -> tuple[str, str]:
    """(private, public) X25519 keys in base64, as qr-collector and the devices read them."""
    key = PrivateKey.generate()
    return base64.b64encode(bytes(key)).decode(), base64.b64encode(bytes(key.public_key)).decode()
