"""`--broker mqtt://host:1883 | mqtts://host:8883`, validated before anything is written."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from device.errors import ProvisionError

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)", re.ASCII)
EXPECTED = "expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (TLS), e.g. mqtts://broker.example.com:8883"


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    host: str
    port: int
    tls: bool

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{host}:{self.port}"


def parse_broker_url(typed: str) -> BrokerUrl:
    def refuse(why: str) -> ProvisionError:
        return ProvisionError(f"broker URL {typed!r} {why}: {EXPECTED}")

    if not typed.isascii() or any(ch.isspace() or not ch.isprintable() for ch in typed):
        raise refuse("holds spaces, control or non-ASCII characters")
    try:
        parts = urlsplit(typed)
        port = parts.port
    except ValueError as exc:
        raise refuse(f"cannot be read ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise refuse(f"has scheme {parts.scheme!r}" if parts.scheme else "has no scheme")
    if parts.username is not None or parts.password is not None:
        # Credentials on a command line end up in shell history and `ps`.
        raise refuse("carries credentials (use --username and --password-file)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise refuse("has a path, query or fragment")
    host = parts.hostname or ""
    if not _valid_host(host):
        raise refuse(f"has no valid host name ({host!r})" if host else "has no host")
    if port == 0:
        raise refuse("has port 0")
    return BrokerUrl(host=host, port=port or DEFAULT_PORTS[scheme], tls=scheme == "mqtts")


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    name = host.removesuffix(".")
    return 0 < len(name) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in name.split("."))
