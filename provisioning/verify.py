"""`qr-provision verify`: the device's retained status proves it is online with the expected config,
a configured scanner connected and, on a production config, LEDs and a buzzer to answer with.

The status topic is `<prefix>/v1/<location>/<device>/status` (retained JSON, written by the daemon):
we subscribe with `+` for the location, because a device provisioned anew may still have an old
location's offline status retained. Offline or another configuration is not final until the timeout:
a device being powered up comes online a few seconds after the technician asks.
"""

from __future__ import annotations

import argparse
import json
import queue
import secrets
import ssl
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from device import mqtt_client
from device.errors import ConfigError, ProvisionError
from device.label_code import CONFIG_HASH
from device.settings import load_settings
from provisioning import registry
from provisioning.broker_url import BrokerUrl, parse_broker_url
from provisioning.options import (
    add_broker_arguments,
    add_login_arguments,
    check_cleartext,
    check_tls_options,
    read_password,
)
from provisioning.prepare import check_id


@dataclass(frozen=True, slots=True)
class Login:
    """How the verifier itself connects (a consumer that may read the status topics)."""

    url: BrokerUrl
    topic_prefix: str = "checkin"
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True, slots=True)
class Expectation:
    device_id: str
    config_hash: str
    location_id: str | None = None
    # From the config or the provisioning record; None when only a hash was given.
    dev: bool | None = None
    feedback: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason: str
    status: dict[str, Any] | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_broker_arguments(parser)
    add_login_arguments(parser, cert_help="the verifier's own, e.g. the consumer's")
    parser.add_argument("--device", required=True, metavar="ID", help="the device id (qrc-...)")
    parser.add_argument("--expect-hash", metavar="HEX", help="the configuration hash to expect")
    parser.add_argument("--config", type=Path, metavar="FILE", help="the device.toml it was given")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S", help="wait at most (default 10)")


def main(args: argparse.Namespace) -> int:
    try:
        url = parse_broker_url(args.broker)
        check_tls_options(url, args.ca, args.cert, args.key)
        login = Login(
            url=url,
            topic_prefix=check_id("topic prefix", args.topic_prefix),
            ca=args.ca,
            cert=args.cert,
            key=args.key,
            username=args.username,
            password=read_password(args.password_file),
        )
        check_cleartext(url, login.password is not None, args.insecure)
        expect = expectation(check_id("device id", args.device), args.expect_hash, args.config)
        if not 0 < args.timeout <= 600:
            raise ProvisionError(f"--timeout {args.timeout:g} must be more than 0 and at most 600 seconds")
    except ProvisionError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    verdict = verify(login, expect, args.timeout)
    if verdict.ok:
        print(f"OK: {verdict.reason}")
        return 0
    print(f"FAILED: {verdict.reason}", file=sys.stderr)
    return 1


def expectation(device_id: str, expect_hash: str | None, config: Path | None) -> Expectation:
    """What to expect, from --expect-hash, else --config, else this machine's provisioning record."""
    if expect_hash is not None:
        if not CONFIG_HASH.fullmatch(expect_hash):
            raise ProvisionError(f"--expect-hash {expect_hash!r} is not 12 lowercase hex digits")
        return Expectation(device_id, expect_hash)
    if config is not None:
        try:
            settings = load_settings(config)
        except ConfigError as exc:
            raise ProvisionError(str(exc)) from None
        if settings.device.id != device_id:
            raise ProvisionError(f"--config {config} is device {settings.device.id!r}, not {device_id!r}")
        return Expectation(
            device_id,
            settings.config_hash(),
            settings.location.id,
            settings.device.dev,
            settings.feedback.backend,
        )
    entry = registry.lookup(device_id)
    if entry is None or not CONFIG_HASH.fullmatch(str(entry.get("config_hash"))):
        raise ProvisionError(
            f"this machine has no record of provisioning {device_id} ({registry.registry_path()}): "
            "pass --config or --expect-hash"
        )
    dev, feedback = entry.get("dev"), entry.get("feedback")
    return Expectation(
        device_id,
        str(entry["config_hash"]),
        entry.get("location_id"),
        dev if isinstance(dev, bool) else None,
        feedback if isinstance(feedback, str) else None,
    )


def verify(login: Login, expect: Expectation, timeout: float = 10.0) -> Verdict:
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    client = _client(login, events)
    topic = f"{login.topic_prefix}/v1/+/{expect.device_id}/status"
    try:
        client.connect(login.url.host, login.url.port, keepalive=30)
    except (OSError, ValueError) as exc:
        return Verdict(False, f"cannot connect to {login.url}: {exc}")
    client.loop_start()
    try:
        return _wait(client, events, topic, expect, time.monotonic() + timeout, timeout)
    finally:
        mqtt_client.disconnect(client)


def _client(login: Login, events: queue.Queue[tuple[str, Any]]) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"qr-provision-verify-{secrets.token_hex(4)}",
        protocol=mqtt.MQTTv5,
    )
    client.connect_timeout = 5.0
    if login.url.tls:
        client.tls_set(
            ca_certs=str(login.ca) if login.ca else None,
            certfile=str(login.cert) if login.cert else None,
            keyfile=str(login.key) if login.key else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
    if login.username is not None:
        client.username_pw_set(login.username, login.password)

    # Callbacks only queue: an exception inside one would kill paho's network thread silently.
    def on_connect(c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Properties | None) -> None:
        events.put(("connack", rc))

    def on_disconnect(c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Properties | None) -> None:
        events.put(("disconnect", rc))

    def on_subscribe(c: mqtt.Client, _u: Any, _m: int, rcs: list[ReasonCode], _p: Properties | None) -> None:
        events.put(("suback", rcs))

    def on_message(c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        events.put(("message", (msg.topic, msg.payload)))

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    return client


def _wait(
    client: mqtt.Client,
    events: queue.Queue[tuple[str, Any]],
    topic: str,
    expect: Expectation,
    deadline: float,
    timeout: float,
) -> Verdict:
    connected = False
    last_failure: Verdict | None = None
    while (left := deadline - time.monotonic()) > 0:
        try:
            kind, value = events.get(timeout=left)
        except queue.Empty:
            break
        if kind == "connack":
            if value.is_failure:
                return Verdict(False, f"the broker refused the verifier's connection: {value}")
            connected = True
            client.subscribe(topic, qos=1)
        elif kind == "disconnect" and not connected:
            # TLS 1.3: a refused client certificate shows up as a closed connection, not a raised error.
            return Verdict(
                False,
                f"the broker closed the connection before accepting it ({value}): "
                "check the verifier's certificate or login",
            )
        elif kind == "suback" and any(rc.is_failure for rc in value):
            return Verdict(False, f"the broker refused the subscription to {topic}: {value[0]}")
        elif kind == "message":
            verdict = judge(value[0], value[1], expect)
            if verdict.ok:
                return verdict
            if verdict.status is not None or last_failure is None:
                last_failure = verdict
    if last_failure is not None:
        return last_failure
    if not connected:
        return Verdict(False, f"no answer from the broker within {timeout:g} s")
    return Verdict(
        False,
        f"no status from {expect.device_id} within {timeout:g} s on {topic}: the device has never "
        "connected with this id, the broker lost its retained messages, or this login may not read it",
    )


def judge(topic: str, payload: bytes, expect: Expectation) -> Verdict:
    """One status message against what was provisioned."""
    location = topic.split("/")[-3]
    if expect.location_id is not None and location != expect.location_id:
        return Verdict(
            False,
            f"{expect.device_id} announces itself at location {location!r}, "
            f"provisioned for {expect.location_id!r}",
        )
    try:
        status = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return Verdict(False, f"the status on {topic} is not JSON")
    if not isinstance(status, dict):
        return Verdict(False, f"the status on {topic} is not a JSON object")
    if status.get("device_id") != expect.device_id:
        return Verdict(False, f"the status on {topic} names device {status.get('device_id')!r}", status)
    if status.get("state") != "online":
        return Verdict(
            False, f"{expect.device_id} at {location} is {status.get('state')!r}, not online", status
        )
    if status.get("config_hash") != expect.config_hash:
        return Verdict(
            False,
            f"{expect.device_id} at {location} runs configuration {status.get('config_hash')!r}, expected "
            f"{expect.config_hash!r}: another SD card, an edited file or QRCHECKIN_* overrides on the device",
            status,
        )
    if problem := hardware_problem(status, expect):
        return Verdict(False, f"{expect.device_id} at {location} {problem}", status)
    unchecked = "" if expect.feedback is not None else "; feedback not checked (give --config)"
    return Verdict(
        True,
        f"{expect.device_id} at {location} is online with configuration {expect.config_hash} "
        f"(version {status.get('version', '?')}, backlog {status.get('backlog', '?')}, "
        f"scanners {', '.join(connected_readers(status, expect))}){unchecked}",
        status,
    )


def connected_readers(status: dict[str, Any], expect: Expectation) -> list[str]:
    readers = status.get("scanners")
    if not isinstance(readers, dict):
        return []
    return [
        name
        for name, state in readers.items()
        # Under systemd stdin is /dev/null: "connected" there reads nothing, unless on a dev bench.
        if state == "connected" and (expect.dev or not str(name).startswith("stdin:"))
    ]


def hardware_problem(status: dict[str, Any], expect: Expectation) -> str | None:
    """Why a device online with the right configuration still cannot serve a worker, if it cannot."""
    if not connected_readers(status, expect):
        readers = status.get("scanners")
        listed = (
            ", ".join(f"{name} {state}" for name, state in readers.items())
            if isinstance(readers, dict) and readers
            else "none"
        )
        return (
            f"has no configured scanner connected (scanners: {listed}): plug it in or fix "
            "[scanner] (`qr-checkin scanners` on the device lists what it sees); the device announces "
            "a scanner as it connects"
        )
    if expect.feedback == "console" and not expect.dev:
        return (
            "answers on the console only (feedback.backend = 'console'): a worker sees and hears "
            "nothing. Provision it with --feedback gpio (the default)"
        )
    return None
