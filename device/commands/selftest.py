"""`qr-checkin selftest`: proves the feedback hardware and the broker for a technician on site.

Every check is a name and a function returning a Result; CHECKS lists them in the order they run.
The command exits 0 when every check passed, 1 otherwise (2 for an invalid configuration, as
check-config does).
"""

from __future__ import annotations

import argparse
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from device.commands import EXIT_CONFIG, add_config_argument, load_or_explain
from device.errors import CheckinError, ConfigError
from device.feedback import Signal, Status, build_feedback
from device.feedback.patterns import PATTERNS, describe, describe_status
from device.mqtt_client import make_client
from device.settings import BrokerSettings, Settings

BROKER_TIMEOUT_S = 4.0
# Silence between two patterns on real hardware, so a technician can tell where one ends.
PAUSE_S = 0.6
# How long the status LED shows each mode during the test.
STATUS_SHOW_S = 2.5


@dataclass(frozen=True, slots=True)
class Result:
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    run: Callable[[Settings, argparse.Namespace], Result]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument(
        "--pattern",
        choices=[signal.value for signal in Signal],
        metavar="NAME",
        help="play only this pattern: " + ", ".join(signal.value for signal in Signal),
    )


def check_feedback(settings: Settings, args: argparse.Namespace) -> Result:
    """Plays the patterns (and the status LED modes) in turn, naming each on stdout as it plays."""
    devices = settings.feedback.devices
    # The console alone has nothing to watch: naming the patterns is the whole show.
    pace = devices != ["console"]
    signals = [Signal(args.pattern)] if args.pattern else list(Signal)
    try:
        feedback = build_feedback(settings.feedback)
    except CheckinError as exc:
        # The usual cause on a provisioned device: the daemon holds the pins.
        return Result(False, f"{exc} (if the qr-checkin service runs, stop it first)")
    try:
        for signal in signals:
            pattern = PATTERNS[signal]
            print(f"playing {signal.value}: {describe(pattern)}", flush=True)
            feedback.signal(signal)
            if pace:
                time.sleep(pattern.seconds + PAUSE_S)
        if not args.pattern and settings.feedback.gpio.status is not None:
            for status in Status:
                print(f"status LED {status.value}: {describe_status(status)}", flush=True)
                feedback.status(status)
                if pace:
                    time.sleep(STATUS_SHOW_S)
    finally:
        feedback.close()
    if not pace:
        return Result(True, f"{len(signals)} pattern(s) named (console backend: nothing to see or hear)")
    played = ", ".join(devices)
    return Result(True, f"{len(signals)} pattern(s) played ({played}): confirm each by eye and ear")


def check_broker(settings: Settings, args: argparse.Namespace) -> Result:
    # Its own client id, so the test does not take over the running daemon's session.
    return probe_broker(settings.broker, f"{settings.device.id}-selftest")


def probe_broker(broker: BrokerSettings, client_id: str, timeout_s: float = BROKER_TIMEOUT_S) -> Result:
    """Connects once and waits for the CONNACK; the Result says why it could not, within timeout_s."""
    where = f"{broker.host}:{broker.port}"
    try:
        client = make_client(broker, client_id)
    except ConfigError as exc:
        return Result(False, f"{where}: {exc}")
    client.connect_timeout = timeout_s
    answers: list[Any] = []
    client.on_connect = lambda _client, _userdata, _flags, reason, _props: answers.append(reason)
    started = time.monotonic()
    try:
        client.connect(broker.host, broker.port, keepalive=broker.keepalive)
    except (OSError, ValueError) as exc:
        return Result(False, f"{where} unreachable: {_why_unreachable(exc, timeout_s)}")
    try:
        while not answers and time.monotonic() - started < timeout_s:
            rc = client.loop(timeout=0.1)
            if answers:
                break  # a refusing CONNACK also ends the connection: its reason is the news
            if rc == mqtt.MQTT_ERR_PROTOCOL:
                return Result(
                    False, f"{where} answered, but not as an MQTT broker (wrong port? TLS expected?)"
                )
            if rc != mqtt.MQTT_ERR_SUCCESS:
                return Result(False, f"{where} dropped the connection: {mqtt.error_string(rc)}")
        if not answers:
            return Result(False, f"{where} accepted TCP but sent no MQTT answer within {timeout_s:g} s")
        if answers[0].is_failure:
            return Result(False, f"{where} refused the client: {answers[0]}")
        elapsed_ms = (time.monotonic() - started) * 1000
        return Result(True, f"{where} reachable (MQTT {broker.protocol}, connected in {elapsed_ms:.0f} ms)")
    finally:
        client.disconnect()


def _why_unreachable(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens on that port)"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:g} s (firewall, wrong host or no network)"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason or exc})"
    return str(exc) or type(exc).__name__


CHECKS: tuple[Check, ...] = (
    Check("feedback", check_feedback),
    # Scanner presence checks go here, one Check per configured source, before the broker.
    Check("broker", check_broker),
)


def run_checks(settings: Settings, args: argparse.Namespace) -> list[tuple[str, Result]]:
    results = []
    for check in CHECKS:
        try:
            result = check.run(settings, args)
        except Exception as exc:
            # One broken check must not hide the answers of the others from the technician.
            result = Result(False, f"check crashed: {type(exc).__name__}: {exc}")
        results.append((check.name, result))
    return results


def summary(results: list[tuple[str, Result]]) -> str:
    width = max(len("check"), *(len(name) for name, _ in results))
    lines = [f"{'check':<{width}}  result  detail"]
    lines += [f"{name:<{width}}  {'ok' if r.ok else 'FAIL':<6}  {r.detail}" for name, r in results]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    settings = load_or_explain(args.config)
    if settings is None:
        return EXIT_CONFIG
    results = run_checks(settings, args)
    print()
    print(summary(results), flush=True)
    return 0 if all(result.ok for _, result in results) else 1
