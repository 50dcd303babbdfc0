"""Who, as the privacy mode allows: a keyed HMAC subject, the ID in clear, a sealed record, or the
subject sealed to the site's collector.

The HMAC key belongs to the deployment (the employer): holding it, they can match their roster. In
`sealed` mode the minimal record is also encrypted to the tracing authority's public key (libsodium
sealed box), so only the authority can read it in full.

The HMAC modes keep the site key on the device's card: whoever takes the card can reverse a subject
by trying ID numbers against it (the masked form leaves 6 digits unknown: a million tries, seconds),
and, the key being the site's, every subject the broker ever carried. Mode `collector` keeps nothing
on the device that reverses a subject: the subject leaves sealed to the site collector's public key
(the collector computes the site HMAC), the masked form leaves at least 9 digits unknown, and the
duplicate window is keyed by a device-local key that lives only in memory (/run), lost at power off.

What each mode gives consumers (README "Privacy" says the same to operators):

| mode   | bhyt / cccd                                        | other                                  |
| ------ | -------------------------------------------------- | -------------------------------------- |
| hmac   | hmac, key_id, masked                               | hmac, key_id, masked                   |
| id     | hmac, key_id, masked, id (normalised number)       | hmac, key_id, masked: never in clear   |
| sealed | hmac, key_id, masked, sealed {type,id,name,birth_year} | hmac, key_id, masked, sealed {type,id} |

In mode `collector` every kind gets masked (of an ID number 9 digits hidden), to_collector {type,id}
and collector_key_id, no hmac and no key_id; plus sealed when an authority key is configured.

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
from typing import TYPE_CHECKING, Any, Literal, get_args

from nacl.public import PublicKey, SealedBox

from device.durable import fsync_dir
from device.errors import ConfigError
from device.payloads import Recognition

if TYPE_CHECKING:
    from device.settings import Settings

log = logging.getLogger(__name__)

Mode = Literal["hmac", "id", "sealed", "collector"]
MODES: tuple[Mode, ...] = get_args(Mode)
KEY_BYTES = 32
MIN_KEY_BYTES = 16
# In mode collector at least this many digits of an ID number stay unknown in the masked form.
HIDDEN_DIGITS = 9
WINDOW_KEY_NAME = "window.key"
DEFAULT_RUNTIME_DIR = Path("/run/qr-checkin")
# Filesystems whose content is gone at power off.
IN_MEMORY_FILESYSTEMS = frozenset({"tmpfs", "ramfs"})


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


def load_window_key(directory: Path, *, dev: bool) -> bytes:
    """The device-local key of the duplicate window in mode collector, made at the first start of a
    boot in `directory` (systemd's RuntimeDirectory, a tmpfs): lost at power off by design, so a
    stolen card holds nothing that reverses the window's entries."""
    if not in_memory(directory):
        message = (
            f"privacy.window_key_dir {directory} is not in memory (tmpfs): the duplicate-window key would"
            " outlive a power cut on the card"
        )
        if not dev:
            raise ConfigError(message)
        log.warning("%s (development mode: allowed)", message)
    path = directory / WINDOW_KEY_NAME
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        key = b""
    except PermissionError:
        # Left by a one-off run as another user (root): a fresh key costs only this boot's window.
        log.warning("window key %s is not readable: starting a new duplicate window", path)
        key = b""
    except OSError as exc:
        raise ConfigError(f"window key {path} cannot be read: {exc.strerror}") from None
    if len(key) == KEY_BYTES:
        return key
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(KEY_BYTES))
        os.replace(tmp, path)  # a memory filesystem: no fsync to make it outlive anything
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot create the window key {path}: {exc.strerror}") from None


def in_memory(directory: Path) -> bool:
    """Whether `directory` (or the nearest existing parent) is on a filesystem that power off empties."""
    return filesystem_type(directory) in IN_MEMORY_FILESYSTEMS


def filesystem_type(directory: Path) -> str:
    """The type of the filesystem holding `directory` or its nearest existing parent ("" if unknown)."""
    target = directory.resolve()
    while not target.exists() and target != target.parent:
        target = target.parent
    best, fstype = "", ""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return ""
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = str(target) == point or str(target).startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, fstype = point, parts[2]
    return fstype


def _sealed_box(public_key: str, setting: str) -> tuple[SealedBox[PublicKey], str]:
    """A sealed box to a base64 X25519 public key, and the key's id (first 8 hex of its SHA-256)."""
    try:
        raw = base64.b64decode(public_key, validate=True)
        return SealedBox(PublicKey(raw)), hashlib.sha256(raw).hexdigest()[:8]
    except Exception as exc:  # nacl raises several types for a bad key
        raise ConfigError(f"privacy.{setting} is not a base64 X25519 key: {exc}") from None


def masked_strongly(code_type: str, subject_id: str, fallback: str | None) -> str | None:
    """The masked form of mode collector: of an ID number, at most its last digits beyond the
    HIDDEN_DIGITS hidden ones (a CCCD number shows 3 of 12, a BHXH number 1 of 10)."""
    if code_type not in ("bhyt", "cccd"):
        return fallback
    shown = max(0, len(subject_id) - HIDDEN_DIGITS)
    return "*" * (len(subject_id) - shown) + subject_id[len(subject_id) - shown :]


class Privacy:
    def __init__(
        self,
        mode: Mode,
        key: bytes | None,
        authority_public_key: str | None = None,
        *,
        collector_public_key: str | None = None,
        window_key: bytes | None = None,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"privacy.subject must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self._box: SealedBox[PublicKey] | None = None
        self._collector: SealedBox[PublicKey] | None = None
        self.collector_key_id: str | None = None
        if mode == "collector":
            if not collector_public_key:
                raise ConfigError("privacy.subject = 'collector' needs privacy.collector_public_key")
            if window_key is None:
                raise ConfigError("privacy.subject = 'collector' needs the device-local window key")
            # The device holds no site key in this mode: nothing on it reverses a subject.
            self._key = None
            self.key_id: str | None = None
            self._window_key = window_key
            self._collector, self.collector_key_id = _sealed_box(collector_public_key, "collector_public_key")
        else:
            if key is None:
                raise ConfigError(f"privacy.subject = {mode!r} needs the site key")
            self._key = key
            self.key_id = hashlib.sha256(key).hexdigest()[:8]
            self._window_key = key
        if mode == "sealed" and not authority_public_key:
            raise ConfigError("privacy.subject = 'sealed' needs privacy.authority_public_key")
        if mode in ("sealed", "collector") and authority_public_key:
            self._box, _ = _sealed_box(authority_public_key, "authority_public_key")

    def __repr__(self) -> str:
        return f"Privacy(mode={self.mode!r}, key_id={self.key_id or self.collector_key_id!r})"

    def pseudonym(self, code_type: str, subject_id: str) -> str:
        """HMAC-SHA256 of the card type and normalised id: stable per person and deployment."""
        if self._key is None:
            raise ValueError("mode collector holds no site key: the collector computes the pseudonym")
        return _hmac(self._key, code_type, subject_id)

    def window_key(self, code_type: str, subject_id: str) -> str:
        """The duplicate window's key for a subject: the pseudonym, or in mode collector an HMAC by
        the device-local key that dies with the boot."""
        return _hmac(self._window_key, code_type, subject_id)

    def masked(self, rec: Recognition) -> str | None:
        """The masked form this mode shows (in events and in log lines)."""
        if self.mode == "collector" and rec.type is not None and rec.subject_id is not None:
            return masked_strongly(rec.type, rec.subject_id, rec.masked)
        return rec.masked

    def subject(self, rec: Recognition) -> dict[str, Any]:
        """The event's `subject` object, as the mode allows."""
        if not rec.accepted or rec.type is None or rec.subject_id is None:
            raise ValueError("a subject exists only for an accepted code")
        if self._collector is not None:
            plain = json.dumps({"type": rec.type, "id": rec.subject_id}, ensure_ascii=False).encode()
            out: dict[str, Any] = {
                "mode": self.mode,
                "masked": self.masked(rec),
                "to_collector": base64.b64encode(self._collector.encrypt(plain)).decode(),
                "collector_key_id": self.collector_key_id,
            }
        else:
            out = {
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


def _hmac(key: bytes, code_type: str, subject_id: str) -> str:
    return hmac.new(key, f"{code_type}:{subject_id}".encode(), hashlib.sha256).hexdigest()


def window_key_dir(settings: Settings) -> Path:
    """Where mode collector keeps its window key: the setting, else systemd's RuntimeDirectory."""
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    return settings.privacy.window_key_dir or Path(runtime or DEFAULT_RUNTIME_DIR)


def build_privacy(settings: Settings) -> Privacy:
    """The privacy of a configuration: its site key loaded, or in mode collector its window key made."""
    p = settings.privacy
    if p.subject == "collector":
        return Privacy(
            "collector",
            None,
            p.authority_public_key,
            collector_public_key=p.collector_public_key,
            window_key=load_window_key(window_key_dir(settings), dev=settings.device.dev),
        )
    return Privacy(p.subject, load_key(settings.key_path, create=settings.device.dev), p.authority_public_key)
