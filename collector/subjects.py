"""What the collector keeps of an event's subject: the site's pseudonym and the masked form.

In the device's privacy mode `collector` (protocol.md) the device holds no site key: it seals
`{"type", "id"}` to the collector's X25519 public key. The collector opens the box with its private
key, computes the site HMAC and key id exactly as a device in mode `hmac` would (device/privacy.py),
and keeps those; the opened number and the box never reach the database. An ID a device sent in clear
(mode `id`) is not kept either: the pseudonym is what queries join on.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, SealedBox

from device.errors import ConfigError
from device.privacy import Privacy, load_key


class SubjectError(ValueError):
    """A subject the collector cannot turn into a pseudonym (the message is invalid, with this reason)."""


class Subjects:
    def __init__(self, private_key_file: Path | None, site_key_file: Path | None) -> None:
        self._box: SealedBox[PrivateKey] | None = None
        self.collector_key_id: str | None = None
        self._site: Privacy | None = None
        if private_key_file is not None:
            key = load_private_key(private_key_file)
            self._box = SealedBox(key)
            self.collector_key_id = hashlib.sha256(bytes(key.public_key)).hexdigest()[:8]
        if site_key_file is not None:
            self._site = Privacy("hmac", load_key(site_key_file, create=False))

    def stored(self, subject: dict[str, Any]) -> dict[str, Any]:
        """The subject as stored: the body's copy and the columns come from it."""
        if subject.get("mode") != "collector":
            return {k: v for k, v in subject.items() if k != "id"}
        if self._box is None or self._site is None:
            raise SubjectError(
                "subject sealed for the collector, but privacy.private_key_file and privacy.site_key_file"
                " are not both configured"
            )
        if subject.get("collector_key_id") != self.collector_key_id:
            raise SubjectError(
                f"subject sealed for collector key {str(subject.get('collector_key_id'))[:16]!r},"
                f" this collector's key is {self.collector_key_id!r}"
            )
        try:
            opened = json.loads(self._box.decrypt(base64.b64decode(subject["to_collector"], validate=True)))
            code_type, subject_id = opened["type"], opened["id"]
            if not (isinstance(code_type, str) and isinstance(subject_id, str) and subject_id):
                raise TypeError("type and id must be strings")
        except (CryptoError, ValueError, TypeError, KeyError) as exc:
            raise SubjectError(f"the sealed subject does not open: {type(exc).__name__}") from None
        out = {k: v for k, v in subject.items() if k not in ("to_collector", "id")}
        out.update(hmac=self._site.pseudonym(code_type, subject_id), key_id=self._site.key_id)
        return out


def load_private_key(path: Path) -> PrivateKey:
    """The collector's X25519 private key: base64 of 32 bytes, in a file only its owner can read."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise ConfigError(f"collector private key file {path} is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"collector private key file {path} cannot be read: {exc}") from None
    if mode & 0o077:
        raise ConfigError(
            f"collector private key file {path} is readable by others (mode {mode & 0o777:o}): chmod 600 it"
        )
    try:
        raw = base64.b64decode(text, validate=True)
        return PrivateKey(raw)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"collector private key file {path} is not a base64 X25519 key: {exc}") from None
