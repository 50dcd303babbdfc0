"""Privacy mode `collector`: the collector opens the box, keeps the site pseudonym, never the number."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

import pytest
from nacl.public import PrivateKey, SealedBox

from collector import tables as t
from collector.settings import load_settings
from collector.store import Store
from collector.subjects import Subjects, load_private_key
from device.errors import ConfigError
from tests.support.collector import Publisher, make_event, run_cli, running, wait_until, write_config
from tests.support.mosquitto import Mosquitto

SITE_KEY = b"5f" * 32
ID = "001099012345"


def keys(tmp_path: Path) -> tuple[PrivateKey, Path, Path]:
    private = PrivateKey.generate()
    key_file = tmp_path / "collector.key"
    key_file.write_text(base64.b64encode(bytes(private)).decode() + "\n")
    key_file.chmod(0o600)
    site = tmp_path / "site.key"
    site.write_bytes(SITE_KEY + b"\n")
    site.chmod(0o600)
    return private, key_file, site


def sealed_subject(private: PrivateKey, code_type: str = "cccd", subject_id: str = ID) -> dict[str, Any]:
    public = bytes(private.public_key)
    box = SealedBox(private.public_key).encrypt(json.dumps({"type": code_type, "id": subject_id}).encode())
    return {
        "mode": "collector",
        "masked": "0010******45",
        "to_collector": base64.b64encode(box).decode(),
        "collector_key_id": hashlib.sha256(public).hexdigest()[:8],
    }


def test_a_sealed_subject_is_stored_as_the_site_pseudonym_only(
    broker: Mosquitto, database: str, tmp_path: Path
) -> None:
    private, key_file, site = keys(tmp_path)
    config = write_config(
        tmp_path / "collector.toml",
        port=broker.port,
        url=database,
        privacy={"private_key_file": str(key_file), "site_key_file": str(site)},
    )
    settings = load_settings(config)
    store = Store(settings.database_url)
    good = make_event(1, subject=sealed_subject(private))
    stranger = make_event(2, subject=sealed_subject(PrivateKey.generate()))
    pub = Publisher(broker.port)
    with running(settings):
        pub.events([good, stranger])
        wait_until(lambda: store.counters()["received"] == 2)
    (row,) = store.rows(t.events)
    expected = hmac.new(SITE_KEY, f"cccd:{ID}".encode(), hashlib.sha256).hexdigest()
    assert row["subject_hmac"] == expected
    assert row["key_id"] == hashlib.sha256(SITE_KEY).hexdigest()[:8]
    assert (row["subject_mode"], row["masked"]) == ("collector", "0010******45")
    dumped = json.dumps(row["body"])
    assert ID not in dumped and "to_collector" not in dumped and good["subject"]["to_collector"] not in dumped
    (invalid,) = store.rows(t.invalid_messages)
    assert "sealed for collector key" in invalid["reason"]
    pub.close()
    store.close()


def test_the_private_key_must_be_readable_by_its_owner_only(tmp_path: Path) -> None:
    _, key_file, site = keys(tmp_path)
    key_file.chmod(0o640)
    with pytest.raises(ConfigError, match="readable by others"):
        load_private_key(key_file)
    key_file.chmod(0o600)
    key_file.write_text("not base64!")
    with pytest.raises(ConfigError, match="not a base64 X25519 key"):
        Subjects(key_file, site)


def test_without_keys_a_sealed_subject_is_invalid_not_guessed(tmp_path: Path) -> None:
    private, _, _ = keys(tmp_path)
    with pytest.raises(ValueError, match="not both configured"):
        Subjects(None, None).stored(sealed_subject(private))


def test_run_refuses_a_group_readable_key(tmp_path: Path) -> None:
    _, key_file, site = keys(tmp_path)
    os.chmod(key_file, 0o644)
    config = write_config(
        tmp_path / "c.toml",
        port=1,
        url=f"sqlite:///{tmp_path}/c.db",
        privacy={"private_key_file": str(key_file), "site_key_file": str(site)},
    )
    done = run_cli("run", "--config", str(config))
    assert done.returncode == 2 and "chmod 600" in done.stderr
