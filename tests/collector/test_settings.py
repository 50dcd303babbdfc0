"""The collector's configuration: TOML, QRCOLLECTOR_ overrides, errors naming the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.settings import DEFAULT_CONFIG, DEFAULT_DATABASE, load_settings
from device.errors import ConfigError
from tests.support.collector import ROOT, run_cli


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "collector.toml"
    path.write_text(text)
    return path


def test_the_example_config_loads_and_defaults_are_sane(tmp_path: Path) -> None:
    s = load_settings(ROOT / "config" / "collector.example.toml")
    assert s.broker.client_id == "qr-collector-1" and s.broker.session_expiry_s == 7 * 86400
    assert s.ingest.batch_max == 500 and s.ingest.batch_ms == 200
    empty = load_settings(write(tmp_path, ""))
    assert empty.database.url.get_secret_value() == DEFAULT_DATABASE
    assert empty.broker.client_id.startswith("qr-collector-")
    assert str(DEFAULT_CONFIG) == "/etc/qr-collector/collector.toml"


def test_unknown_key_names_the_key_and_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[database]\nurll = 'sqlite:///x.db'\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert "unknown key 'database.urll'" in str(err.value) and str(path) in str(err.value)


def test_environment_overrides_the_file_and_is_named_in_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "[broker]\nport = 1883\n")
    monkeypatch.setenv("QRCOLLECTOR_BROKER__PORT", "8883")
    monkeypatch.setenv("QRCOLLECTOR_DATABASE__URL", "postgresql://u:pw@db/checkin")
    s = load_settings(path)
    assert s.broker.port == 8883
    assert s.database_url == "postgresql+psycopg://u:pw@db/checkin"
    monkeypatch.setenv("QRCOLLECTOR_INGEST__BATCH_MAX", "5000")
    with pytest.raises(ConfigError, match="QRCOLLECTOR_INGEST__BATCH_MAX"):
        load_settings(path)


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    s = load_settings(
        write(tmp_path, "[database]\nurl = 'sqlite:///var/c.db'\n[privacy]\nsite_key_file = 'site.key'\n")
    )
    assert s.database_url == f"sqlite:///{tmp_path / 'var' / 'c.db'}"
    assert s.privacy.site_key_file == tmp_path / "site.key"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[database]\nurl = 'mysql://x'\n", "database.url"),
        ("[broker]\nshared_group = 'a/b'\n", "broker.shared_group"),
        ("[broker]\nreceive_maximum = 0\n", "broker.receive_maximum"),
        ("[ingest]\nbatch_ms = 500\n", "ingest.batch_ms"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(write(tmp_path, text))


def test_cli_exits_2_on_a_bad_config_and_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[brokr]\n")
    for command in ("run", "status", "gaps"):
        done = run_cli(command, "--config", str(path))
        assert done.returncode == 2, done.stderr
        assert "unknown key 'brokr'" in done.stderr and str(path) in done.stderr
