"""One way to make a paho client from the broker settings, for the daemon and the technicians' checks."""

from __future__ import annotations

import contextlib
import ipaddress
import random
import socket
import ssl
import zlib
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from device.errors import ConfigError
from device.settings import BrokerSettings, split_address

Resolver = Callable[[str, int], list[str]]


def disconnect(client: mqtt.Client) -> None:
    """Sends DISCONNECT and waits for the network thread of `loop_start()` to end."""
    client.disconnect()
    # paho 2.2 (eclipse-paho/paho.mqtt.python#872): after a disconnect the thread ends by itself and
    # clears its handle between loop_stop's check and its join. Then nothing is left to wait for.
    with contextlib.suppress(AttributeError):
        client.loop_stop()


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


def resolve(host: str, port: int) -> list[str]:
    """Every address a name has (A and AAAA records), in the resolver's order, without repeats."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class Failover:
    """The broker nodes a device tries in turn: `host`, then `hosts`, a name standing for each of its
    DNS records. A lost node (a failed connect or a dropped connection) moves the device to the next
    one, after the same backoff and jitter as before; the contract does not change with the node.

    Each device starts at a place of its own in the list (from its client id), so a fleet spreads over
    the nodes instead of all landing on the first. With TLS the names are kept (the certificate names
    the host, not its address): the socket layer then tries each record of a name itself. The records
    are read again after every round, so a node added to DNS is found without a restart.
    """

    def __init__(self, broker: BrokerSettings, client_id: str, resolver: Resolver = resolve) -> None:
        named = [(broker.host, broker.port), *(split_address(a, broker.port) for a in broker.hosts)]
        self._names = list(dict.fromkeys(named))
        self._expand = not broker.tls
        self._resolver = resolver
        self._addresses = self._resolve()
        self._index = zlib.crc32(client_id.encode()) % len(self._addresses)

    def _resolve(self) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for host, port in self._names:
            if not self._expand or _is_ip(host):
                out.append((host, port))
                continue
            try:
                out += [(address, port) for address in self._resolver(host, port)]
            except OSError:
                out.append((host, port))  # unresolvable now: paho's connect names the error
        return list(dict.fromkeys(out)) or list(self._names)

    @property
    def several(self) -> bool:
        return len(self._names) > 1 or len(self._addresses) > 1

    def current(self) -> tuple[str, int]:
        return self._addresses[self._index % len(self._addresses)]

    def advance(self) -> tuple[str, int]:
        self._index += 1
        if self._index % len(self._addresses) == 0 and self._expand:
            self._addresses = self._resolve()
            self._index = 0
        return self.current()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
