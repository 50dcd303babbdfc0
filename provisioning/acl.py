"""The broker side of a fleet: a mosquitto ACL, a mosquitto password file and its configuration.

The ACL relies on username = device id: the client certificate's CN (`use_identity_as_username true`)
or the username in the password file. Each device gets exact topics under its own location, so a
stolen card can neither publish as another location nor below deeper topics; `use_username_as_clientid`
binds the client id to the login, so no login can take over (knock off) another device's connection.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

# mosquitto_passwd's own parameters (mosquitto 2.x, "$7$"): PBKDF2-HMAC-SHA512, 12-byte salt, 64-byte
# hash, 101 iterations. The passwords we generate are 192-bit random tokens, so the low count costs
# nothing; using mosquitto's default keeps the file identical in kind to what its tool writes.
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12

# The broker's window for an MQTT 3.1.1 subscriber: the collector's own MQTT 5 Receive Maximum
# (collector.settings: receive_maximum, 2000), four batches, so one commits while the next arrives.
MAX_INFLIGHT = 2000

# Where the generated mosquitto.conf expects the files of fleet/broker/ on the broker host.
BROKER_ETC = "/etc/mosquitto"
ACL_PATH = f"{BROKER_ETC}/qr-checkin.acl"
PASSWD_PATH = f"{BROKER_ETC}/qr-checkin.passwd"
CA_PATH = f"{BROKER_ETC}/certs/site-ca.crt"
SERVER_CERT_PATH = f"{BROKER_ETC}/certs/server.crt"
SERVER_KEY_PATH = f"{BROKER_ETC}/certs/server.key"


@dataclass(frozen=True, slots=True)
class DeviceGrant:
    device_id: str
    location_id: str


def device_topics(topic_prefix: str, grant: DeviceGrant) -> tuple[list[str], list[str]]:
    """(topics it writes, topics it reads): its events and status; its own two command topics."""
    base = f"{topic_prefix}/v1/{grant.location_id}/{grant.device_id}"
    return [f"{base}/events", f"{base}/status"], [f"{base}/cmd/replay", f"{base}/cmd/committed"]


def device_acl(topic_prefix: str, grant: DeviceGrant) -> list[str]:
    writes, reads = device_topics(topic_prefix, grant)
    return [
        f"user {grant.device_id}",
        *(f"topic write {topic}" for topic in writes),
        *(f"topic read {topic}" for topic in reads),
    ]


def acl(
    topic_prefix: str, consumer: str, devices: Iterable[DeviceGrant] = (), collector: str | None = None
) -> str:
    lines = [
        "# mosquitto ACL written by qr-provision: whatever is not granted here is refused.",
        "# Devices: username = device id (client certificate CN with use_identity_as_username, or the",
        "# password file's user). Each one writes exactly its events and status topics at its own",
        "# location and reads only its own command topics.",
    ]
    for grant in devices:
        lines += ["", *device_acl(topic_prefix, grant)]
    lines += [
        "",
        "# The read-only consumer (qr-provision verify, tracers) reads every location's topics.",
        f"user {consumer}",
        f"topic read {topic_prefix}/v1/#",
    ]
    if collector is not None:
        wildcard = f"{topic_prefix}/v1/+/+"
        lines += [
            "",
            "# The collector stores events, follows status, and asks devices to replay or release.",
            f"user {collector}",
            f"topic read {wildcard}/events",
            f"topic read {wildcard}/status",
            f"topic write {wildcard}/cmd/replay",
            f"topic write {wildcard}/cmd/committed",
        ]
    return "\n".join(lines) + "\n"


def mosquitto_conf(port: int, *, tls: bool, client_certs: bool, passwords: bool) -> str:
    """The broker's configuration for this fleet (mosquitto 2): security, persistence, one listener."""
    lines = [
        "# mosquitto 2 configuration written by qr-provision for this fleet. Install the files of this",
        f"# folder as {ACL_PATH}" + (f" and {PASSWD_PATH}" if passwords else "") + ".",
        "per_listener_settings false",
        "allow_anonymous false",
        f"acl_file {ACL_PATH}",
    ]
    if passwords:
        lines.append(f"password_file {PASSWD_PATH}")
    lines += [
        "# A login's client id is its username: without this, any login could connect with another",
        "# device's client id and knock it off the broker again and again.",
        "use_username_as_clientid true",
        "# Queued and in-flight QoS 1 messages survive a broker restart; without persistence a restart",
        "# loses them after the devices already had their PUBACK. mosquitto saves every",
        "# autosave_interval seconds (default 1800, half an hour of check-ins at risk): save each minute.",
        "persistence true",
        "persistence_location /var/lib/mosquitto/",
        "autosave_interval 60",
        "# The default queue of 1000 messages per offline client drops check-ins silently while the",
        "# collector is down; the collector asks devices to replay gaps, but only while they hold them.",
        "max_queued_messages 100000",
        "# Unacknowledged deliveries to an MQTT 3.1.1 client (MQTT 5 clients set their own Receive",
        "# Maximum). The collector acknowledges after each database commit, batches of up to 500: at",
        "# the default of 20 a 3.1.1 collector would wait out every batch at 20 (~100 events/s).",
        f"max_inflight_messages {MAX_INFLIGHT}",
        "",
        f"listener {port}",
    ]
    if tls:
        lines += [f"cafile {CA_PATH}", f"certfile {SERVER_CERT_PATH}", f"keyfile {SERVER_KEY_PATH}"]
    if client_certs:
        lines += [
            "require_certificate true",
            "# username = certificate CN = device id (or the collector's and consumer's names)",
            "use_identity_as_username true",
        ]
    return "\n".join(lines) + "\n"


def new_password() -> str:
    return secrets.token_urlsafe(24)


def password_entry(username: str, password: str, salt: bytes | None = None) -> str:
    """One line of a mosquitto password file: `user:$7$101$<salt b64>$<hash b64>`."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    b64 = base64.b64encode
    return f"{username}:$7${PBKDF2_ITERATIONS}${b64(salt).decode()}${b64(digest).decode()}"


def password_file(logins: Iterable[tuple[str, str]]) -> str:
    return "".join(password_entry(user, password) + "\n" for user, password in logins)
