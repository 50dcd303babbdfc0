"""A test PKI (CA, broker certificate, client certificates) and a TLS MQTT v5 probe client.

Client certificates come from provisioning.certs, the code under test; the CA and the broker's own
certificate are the site's business, made here with the same library.
"""

from __future__ import annotations

import datetime as dt
import queue
import ssl
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from device import mqtt_client
from provisioning.certs import Authority, issue_client
from tests.support.slowdown import scaled

LOOPBACK = IPv4Address("127.0.0.1")


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path

    @property
    def authority(self) -> Authority:
        key = serialization.load_pem_private_key(self.ca_key.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return Authority(x509.load_pem_x509_certificate(self.ca_cert.read_bytes()), key)

    def client(self, common_name: str) -> tuple[Path, Path]:
        """A client certificate and key for `common_name`, issued by provisioning.certs."""
        issued = issue_client(self.authority, common_name, days=2)
        cert, key = self.dir / f"{common_name}.crt", self.dir / f"{common_name}.key"
        cert.write_bytes(issued.cert_pem)
        key.write_bytes(issued.key_pem)
        return cert, key

    def listener(self, *, client_certs: bool) -> str:
        """mosquitto lines for a TLS listener; with client certificates the CN is the username."""
        lines = [f"cafile {self.ca_cert}", f"certfile {self.server_cert}", f"keyfile {self.server_key}"]
        if client_certs:
            lines += ["require_certificate true", "use_identity_as_username true"]
        return "\n".join(lines)


def make_pki(
    directory: Path,
    ca_name: str = "qr-checkin test CA",
    server_names: tuple[str | IPv4Address, ...] = ("localhost", LOOPBACK),
) -> Pki:
    """A CA and a broker certificate for `server_names` (DNS names or addresses) signed by it."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name_x509 = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
    ca = (
        _builder(ca_name_x509, ca_name_x509, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        _builder(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]),
            ca.subject,
            server_key.public_key(),
            now,
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(n) if isinstance(n, IPv4Address) else x509.DNSName(n) for n in server_names]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(
        directory,
        directory / "ca.crt",
        directory / "ca.key",
        directory / "server.crt",
        directory / "server.key",
    )
    pki.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.server_cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    for key, path in ((ca_key, pki.ca_key), (server_key, pki.server_key)):
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return pki


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, now: dt.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
    )


class Probe:
    """An MQTT v5 client that reports CONNACK, PUBACK reason codes and messages through queues."""

    def __init__(
        self,
        port: int,
        *,
        ca: Path | None = None,
        cert: Path | None = None,
        key: Path | None = None,
        username: str | None = None,
        password: str | None = None,
        client_id: str = "",
    ) -> None:
        self.port = port
        self.connacks: queue.Queue[ReasonCode | None] = queue.Queue()
        self.acks: queue.Queue[tuple[int, ReasonCode]] = queue.Queue()
        self.messages: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
        self.subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if ca is not None:
            self.client.tls_set(
                ca_certs=str(ca),
                certfile=str(cert) if cert else None,
                keyfile=str(key) if key else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = lambda _c, _u, _f, rc, _p: self.connacks.put(rc)
        # TLS 1.3 refuses a client certificate after the handshake: a disconnect without CONNACK.
        self.client.on_disconnect = lambda _c, _u, _f, _rc, _p: self.connacks.put(None)
        self.client.on_publish = lambda _c, _u, mid, rc, _p: self.acks.put((mid, rc))
        self.client.on_subscribe = lambda _c, _u, _m, rcs, _p: self.subacks.put(rcs)
        self.client.on_message = self._on_message

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.messages.put((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def connect(self, timeout: float = 10.0) -> ReasonCode | None:
        """The CONNACK reason code, or None when the broker closed the connection without one."""
        self.client.connect("localhost", self.port, keepalive=10)
        self.client.loop_start()
        try:
            return self.connacks.get(timeout=scaled(timeout))
        except queue.Empty:
            return None

    def subscribe(self, topic: str, timeout: float = 10.0) -> list[ReasonCode]:
        self.client.subscribe(topic, qos=1)
        return self.subacks.get(timeout=scaled(timeout))

    def publish(self, topic: str, payload: str, *, retain: bool = False, timeout: float = 10.0) -> int:
        """Publishes at QoS 1 and returns the PUBACK's reason code value (0 = accepted, 0x87 = refused)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        mid, rc = self.acks.get(timeout=scaled(timeout))
        assert mid == info.mid, (mid, info.mid)
        return int(rc.value)

    def message(self, timeout: float = 10.0) -> tuple[str, bytes, bool]:
        return self.messages.get(timeout=scaled(timeout))

    def close(self) -> None:
        mqtt_client.disconnect(self.client)
