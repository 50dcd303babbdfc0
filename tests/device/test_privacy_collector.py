"""Privacy mode `collector` on the real daemon, a real mosquitto and a real tmpfs standing in for /run
(issue 12 item 5): what a stolen card holds reverses no subject, the collector reverses every one.

A power off is the tmpfs unmounted and mounted again: the window key is gone with it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nacl.public import PrivateKey, SealedBox

from device.daemon import EXIT_CANNOT_START
from device.errors import ConfigError
from device.privacy import WINDOW_KEY_NAME, load_window_key
from tests.support.daemon import DaemonProcess, run_cli, write_config
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.mounts import mount, require_root, unmount
from tests.support.payloads import vectors
from tests.support.personal_data import files_under, find_personal_data
from tests.support.schema import validate_event
from tests.support.subscriber import Subscriber

SITE_KEY = b"the site key only the collector holds"
CCCD = vectors()["cccd"][0]["payload"]
BHYT = vectors()["bhyt"][0]["payload"]


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs, as systemd's RuntimeDirectory is on a Pi; `power_cycle` empties it as a power off does."""
    require_root()
    where = tmp_path / "run"
    where.mkdir()
    mount("-t", "tmpfs", "-o", "size=1m,mode=0755", "qr-checkin-run", str(where))
    try:
        yield where
    finally:
        unmount(where)


def power_cycle(run_dir: Path) -> None:
    unmount(run_dir)
    mount("-t", "tmpfs", "-o", "size=1m,mode=0755", "qr-checkin-run", str(run_dir))


def collector_config(tmp_path: Path, port: int, run_dir: Path, public: str, *, dev: bool = True) -> Path:
    return write_config(
        tmp_path / "device.toml",
        port=port,
        storage=tmp_path / "state",
        device={"id": "bus-dev-1", "dev": dev},
        privacy={
            "subject": "collector",
            "collector_public_key": public,
            "window_key_dir": str(run_dir / "q"),
        },
    )


def collector_stores(private: PrivateKey, subject: dict[str, Any]) -> dict[str, str]:
    """What the collector keeps of a subject (protocol.md): the site HMAC and its key id, nothing opened."""
    opened = json.loads(SealedBox(private).decrypt(base64.b64decode(subject["to_collector"])))
    digest = hmac.new(SITE_KEY, f"{opened['type']}:{opened['id']}".encode(), hashlib.sha256).hexdigest()
    return {"hmac": digest, "key_id": hashlib.sha256(SITE_KEY).hexdigest()[:8]}


def test_collector_mode_end_to_end_and_what_a_stolen_card_holds(
    tmp_path: Path, broker: Mosquitto, run_dir: Path
) -> None:
    private = PrivateKey.generate()
    public = base64.b64encode(bytes(private.public_key)).decode()
    config = collector_config(tmp_path, broker.port, run_dir, public)
    sub = Subscriber(broker.port)
    try:
        daemon = DaemonProcess(config).start()
        try:
            first = [daemon.scan(code) for code in (CCCD, BHYT, CCCD)]
            assert [a["feedback"] for a in first] == ["accepted", "accepted", "duplicate"]
            assert daemon.terminate() == 0
        finally:
            daemon.stop()
        # A restart within the boot (the service restarted): the window key is still in /run.
        daemon = DaemonProcess(config).start()
        try:
            assert daemon.scan(CCCD)["feedback"] == "duplicate"
            assert daemon.terminate() == 0
        finally:
            daemon.stop()
        window_key = (run_dir / "q" / WINDOW_KEY_NAME).read_bytes()
        # A power off: the key is gone, and the same person within the window is accepted twice,
        # the lesser harm (README "Privacy").
        power_cycle(run_dir)
        daemon = DaemonProcess(config).start()
        try:
            again = daemon.scan(CCCD)
            assert again["feedback"] == "accepted"
            assert daemon.terminate() == 0
        finally:
            daemon.stop()
        accepted = {a["event_id"] for a in [*first[:2], again]}
        events = sub.wait_event_ids(accepted)
    finally:
        sub.close()

    for event in events:
        validate_event(event)
        subject = event["subject"]
        assert subject["mode"] == "collector" and "hmac" not in subject and "key_id" not in subject
        assert subject["masked"].count("*") >= 9
    by_id = {e["event_id"]: e for e in events}
    stored = [
        collector_stores(private, by_id[i]["subject"]) for i in (first[0]["event_id"], again["event_id"])
    ]
    assert stored[0] == stored[1], "the collector links one person across boots by the site HMAC"

    # The stolen card: no site key was ever written (dev mode would have generated one in mode hmac),
    # the window key never reached it, and no personal data or pseudonym is on it.
    card = files_under(tmp_path / "state")
    assert not (tmp_path / "state" / "site.key").exists()
    assert not [
        name for name, data in card.items() if window_key in data or window_key.hex().encode() in data
    ]
    assert not [name for name, data in card.items() if stored[0]["hmac"].encode() in data]
    assert find_personal_data(card) == []


def test_the_window_key_lives_only_in_memory(tmp_path: Path, run_dir: Path) -> None:
    key = load_window_key(run_dir / "q", dev=False)
    assert len(key) == 32 and load_window_key(run_dir / "q", dev=False) == key
    assert (run_dir / "q" / WINDOW_KEY_NAME).stat().st_mode & 0o077 == 0
    on_card = tmp_path / "state" / "run"  # the card's filesystem, not a tmpfs
    with pytest.raises(ConfigError, match="not in memory"):
        load_window_key(on_card, dev=False)
    assert not on_card.exists()

    public = base64.b64encode(bytes(PrivateKey.generate().public_key)).decode()
    config = write_config(
        tmp_path / "device.toml",
        port=free_port(),
        storage=tmp_path / "state",
        device={"id": "bus-dev-1", "dev": False},
        privacy={"subject": "collector", "collector_public_key": public, "window_key_dir": str(on_card)},
    )
    run = run_cli("run", "--config", str(config))
    assert run.returncode == EXIT_CANNOT_START and "not in memory" in run.stderr, run.stderr
