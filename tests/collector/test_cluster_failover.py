"""Devices fail over: `[broker] hosts` (and a name with several DNS records) name more nodes; a device
that loses its node moves to the next with the same backoff and jitter, and its messages do not change."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from device.mqtt_client import Failover
from device.settings import BrokerSettings, split_address
from tests.support.daemon import DaemonProcess, write_config
from tests.support.mosquitto import Mosquitto
from tests.support.payloads import other_codes
from tests.support.subscriber import Subscriber


def test_addresses_are_host_and_port_with_the_default_port() -> None:
    assert split_address("node-a", 1883) == ("node-a", 1883)
    assert split_address("node-b:8883", 1883) == ("node-b", 8883)
    assert split_address("[fd00::1]:1884", 1883) == ("fd00::1", 1884)
    assert split_address("fd00::2", 1883) == ("fd00::2", 1883)
    for bad in ("node:0", "node:x", ":1883", "[fd00::1]x"):
        with pytest.raises(ValueError):
            split_address(bad, 1883)
    with pytest.raises(ValidationError, match="hosts"):
        BrokerSettings(hosts=["ok", "node:99999"])


def _records(table: dict[str, list[str]]) -> object:
    return lambda host, _port: table[host]


def test_every_node_and_every_dns_record_is_tried_in_turn() -> None:
    broker = BrokerSettings(host="mqtt.park.example", port=1883, hosts=["10.0.0.9:1884"])
    dns = {"mqtt.park.example": ["10.0.0.1", "10.0.0.2", "10.0.0.3"]}
    failover = Failover(broker, "bus-1", resolver=_records(dns))  # type: ignore[arg-type]
    assert failover.several
    first = failover.current()
    seen = [first] + [failover.advance() for _ in range(3)]
    assert sorted(seen) == [("10.0.0.1", 1883), ("10.0.0.2", 1883), ("10.0.0.3", 1883), ("10.0.0.9", 1884)]
    # A record added to DNS is found on the next round.
    dns["mqtt.park.example"].append("10.0.0.4")
    again = {failover.advance() for _ in range(9)}
    assert ("10.0.0.4", 1883) in again


def test_a_fleet_spreads_over_the_nodes_and_tls_keeps_names() -> None:
    broker = BrokerSettings(host="10.0.0.1", hosts=["10.0.0.2", "10.0.0.3"])
    starts = {Failover(broker, f"bus-{i}").current() for i in range(30)}
    assert len(starts) == 3
    tls = BrokerSettings(host="mqtt.park.example", tls=True)
    failover = Failover(tls, "bus-1", resolver=_records({}))  # type: ignore[arg-type]
    assert failover.current() == ("mqtt.park.example", 1883)  # the certificate names the host
    assert not failover.several
    single = Failover(BrokerSettings(host="127.0.0.1"), "bus-1")
    assert not single.several


def test_a_device_that_loses_its_node_moves_to_the_next(tmp_path: Path) -> None:
    brokers = [Mosquitto(tmp_path / f"broker-{i}").start() for i in range(2)]
    subs = [Subscriber(b.port) for b in brokers]
    config = write_config(
        tmp_path / "device.toml",
        port=brokers[0].port,
        storage=tmp_path / "state",
        broker={"hosts": [f"127.0.0.1:{brokers[1].port}"], "protocol": "3.1.1"},
    )
    daemon = DaemonProcess(config).start()
    try:
        line = daemon.wait_log("connected to broker", timeout=20)
        port = int(re.findall(r"connected to broker 127\.0\.0\.1:(\d+)", line)[-1])
        first = next(i for i, b in enumerate(brokers) if b.port == port)
        codes = other_codes(6)
        before = {daemon.scan(code)["event_id"] for code in codes[:3]}
        subs[first].wait_event_ids(before, timeout=20)
        mark = len(daemon.stderr_lines)
        brokers[first].kill()
        daemon.wait_log("next broker node", timeout=20, after=mark)
        other = 1 - first
        daemon.wait_log(f"connected to broker 127.0.0.1:{brokers[other].port}", timeout=30, after=mark)
        after = {daemon.scan(code)["event_id"] for code in codes[3:]}
        got = subs[other].wait_event_ids(after, timeout=20)
        # The same contract on the new node: the same topics and fields, seq going on.
        assert sorted(e["seq"] for e in got if e["event_id"] in after) == [4, 5, 6]
    finally:
        daemon.stop()
        for s in subs:
            s.close()
        for b in brokers:
            b.stop()
