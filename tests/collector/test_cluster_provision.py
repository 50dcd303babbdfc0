"""Provisioning for a RabbitMQ site: a '.' in an id would split a topic level there, so it is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.provision import provision, provision_registry

__all__ = ["provision_registry"]  # the autouse fixture, imported so pytest applies it here

FLEET = "kind,plate,location_id,name\nbus,98C-123.45,,\ndoor,,gate.1,\ndoor,,gate-2,\n"


def _batch(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, Path]:
    fleet = tmp_path / "fleet.csv"
    fleet.write_text(FLEET, encoding="utf-8")
    out = tmp_path / "out"
    code, _, err = provision(
        capsys, "batch", fleet, "--out", out, "--broker", "mqtt://b", "--insecure", "--no-labels", *extra
    )
    return code, err, out


def test_rabbitmq_sites_refuse_dots_in_new_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, out = _batch(tmp_path, capsys, "--broker-kind", "rabbitmq")
    assert code == 1
    assert "row 3: location 'gate.1': a '.' splits a topic level on RabbitMQ" in err
    # The plate's dots are separators, gone from its id: that bus is fine.
    assert (out / "98C12345").is_dir() and (out / "gate-2").is_dir() and not (out / "gate.1").exists()


def test_a_dotted_prefix_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err, out = _batch(tmp_path, capsys, "--broker-kind", "rabbitmq", "--topic-prefix", "park.a")
    assert code != 0 and "topic prefix 'park.a'" in err
    assert not out.exists()


def test_other_brokers_keep_dots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, out = _batch(tmp_path, capsys)
    assert code == 0, err
    assert (out / "gate.1").is_dir()
