"""Who, as the privacy mode allows: a keyed HMAC subject, the ID in clear, or a sealed record.

The HMAC key belongs to the deployment (the employer): holding it, they can match their roster; nobody
else can reverse a subject. In `sealed` mode the minimal record is also encrypted to the tracing
authority's public key (libsodium sealed box), so only the authority can read it in full.

What each mode gives consumers (README "Privacy" says the same to operators):

| mode   | bhyt / cccd                                        | other                                  |
| ------ | -------------------------------------------------- | -------------------------------------- |
| hmac   | hmac, key_id, masked                               | hmac, key_id, masked                   |
| id     | hmac, key_id, masked, id (normalised number)       | hmac, key_id, masked: never in clear   |
| sealed | hmac, key_id, masked, sealed {type,id,name,birth_year} | hmac, key_id, masked, sealed {type,id} |

A personal QR is treated like a card, its id being the QID; its sealed record carries the document
number as the code shows it (often masked) instead of the name: {type,id,document,birth_year}.

An `other` code is never sent in clear: an unknown code may hold a name or a phone number, and we cannot
tell which part is an id. The tracing authority gets it sealed, since it is all there is to trace.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any, Literal, get_args

from nacl.public import PublicKey, SealedBox

from device.durable import fsync_dir
from device.errors import ConfigError
from device.payloads import Recognition

log = logging.getLogger(__name__)

Mode = Literal["hmac", "id", "sealed"]
MODES: tuple[Mode, ...] = get_args(Mode)
KEY_BYTES = 32
MIN_KEY_BYTES = 16


def load_key(path: Path, *, create: bool) -> bytes:
    """Reads the site key; in development mode a missing one is generated (0600) with a warning.

    The key is the file's bytes without surrounding whitespace (provisioning writes 64 hex characters);
    an employer matching a roster uses exactly those bytes as the HMAC key.
    """
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        if not create:
            raise ConfigError(
                f"privacy key file {path} is missing: provisioning installs it (qr-provision --site-key)"
            ) from None
        key = _generate_key(path)
    except OSError as exc:
        raise ConfigError(f"privacy key file {path} cannot be read: {exc.strerror}") from None
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            f"privacy key file {path} holds {len(key)} bytes: at least {MIN_KEY_BYTES} are needed"
        )
    # Group read is how `make install` shares /etc/qr-checkin with the service (root:qr-checkin 0640).
    if path.stat().st_mode & 0o007:
        log.warning("privacy key file %s is open to all users: chmod 640 (or 600) it", path)
    return key


def _generate_key(path: Path) -> bytes:
    log.warning("privacy key %s missing: generating a development key (not for production)", path)
    key = secrets.token_hex(KEY_BYTES).encode()
    # Written whole under a temporary name, then linked into place: a concurrent starter sees either
    # no key or a complete one, and a power cut cannot leave an empty key behind.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            key = path.read_bytes().strip()
        finally:
            tmp.unlink()
        # A key lost to a power cut would silently change every subject after the reboot.
        fsync_dir(path.parent)
    except OSError as exc:
        raise ConfigError(f"cannot create privacy key file {path}: {exc.strerror}") from None
    return key


class Privacy:
    def __init__(self, mode: Mode, key: bytes, authority_public_key: str | None = None) -> None:
        if mode not in MODES:
            raise ConfigError(f"privacy.subject must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self._key = key
        self.key_id = hashlib.sha256(key).hexdigest()[:8]
        self._box: SealedBox[PublicKey] | None = None
        if mode == "sealed":
            if not authority_public_key:
                raise ConfigError("privacy.subject = 'sealed' needs privacy.authority_public_key")
            try:
                self._box = SealedBox(PublicKey(base64.b64decode(authority_public_key, validate=True)))
            except Exception as exc:  # nacl raises several types for a bad key
                raise ConfigError(f"privacy.authority_public_key is not a base64 X25519 key: {exc}") from None

    def __repr__(self) -> str:
        return f"Privacy(mode={self.mode!r}, key_id={self.key_id!r})"

    def pseudonym(self, code_type: str, subject_id: str) -> str:
        """HMAC-SHA256 of the card type and normalised id: stable per person and deployment."""
        msg = f"{code_type}:{subject_id}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def subject(self, rec: Recognition) -> dict[str, Any]:
        """The event's `subject` object, as the mode allows."""
        if not rec.accepted or rec.type is None or rec.subject_id is None:
            raise ValueError("a subject exists only for an accepted code")
        out: dict[str, Any] = {
            "mode": self.mode,
            "hmac": self.pseudonym(rec.type, rec.subject_id),
            "key_id": self.key_id,
            "masked": rec.masked,
        }
        # An "other" code may hold a name or a phone number: it is never sent in clear.
        if self.mode == "id" and rec.id_in_clear:
            out["id"] = rec.subject_id
        if self._box is not None:
            record: dict[str, Any] = {"type": rec.type, "id": rec.subject_id}
            if rec.record is not None:
                record.update(rec.record.sealed())
            sealed = self._box.encrypt(json.dumps(record, ensure_ascii=False).encode())
            out["sealed"] = base64.b64encode(sealed).decode()
        return out
