"""One way to make a paho client from the broker settings, for the daemon and the technicians' checks."""

from __future__ import annotations

import random
import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from device.errors import ConfigError
from device.settings import BrokerSettings


def make_client(broker: BrokerSettings, client_id: str) -> mqtt.Client:
    """A paho 2 client with the protocol, credentials and TLS files of `broker` (not yet connected)."""
    protocol = mqtt.MQTTv5 if broker.protocol == "5" else mqtt.MQTTv311
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        clean_session=None if protocol == mqtt.MQTTv5 else True,
    )
    if broker.username:
        client.username_pw_set(
            broker.username, broker.password.get_secret_value() if broker.password else None
        )
    if broker.tls:
        try:
            client.tls_set(
                ca_certs=str(broker.ca) if broker.ca else None,
                certfile=str(broker.cert) if broker.cert else None,
                keyfile=str(broker.key) if broker.key else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        except (OSError, ValueError, ssl.SSLError) as exc:
            raise ConfigError(f"broker TLS files unusable: {exc}") from None
    return client


def describe_connect_error(exc: BaseException | None) -> tuple[bool, str]:
    """(is it TLS, a short reason) for a failed connection attempt, the same text for the same cause."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return True, f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return True, str(getattr(exc, "reason", None) or exc)
    if isinstance(exc, OSError):
        return False, exc.strerror or str(exc)
    return False, "unknown error" if exc is None else str(exc)


def reconnect_delay(attempts: int, low: float, high: float, rng: random.Random | None = None) -> float:
    """The wait before the next connection attempt: doubling from `low` to `high`, with jitter, so a
    fleet does not reconnect in lockstep after a broker restart (paho's own doubling has none)."""
    delay = min(high, low * 2 ** min(attempts, 16))
    return delay * (rng or random).uniform(0.5, 1.0)
