"""A clock behind the broker certificate's notBefore (issue 12 item 18): a bus Pi without a real-time
clock boots with the time it shut down at (or 1970), and a server certificate renewed since then is
"not yet valid" to it until NTP syncs, which on a bus with only the MQTT port open may be never.

What the device does (the README says the same, under "Storage faults"): it never trusts a
certificate outside its validity by its own clock, so it keeps every check-in and delivers once the
clock is right. The fix is the operator's: renew server certificates with notBefore backdated, and
keep a time source. Proven with the daemon's wall clock set back two days by libfaketime (as chaos
does) against a real mosquitto TLS listener, then put right while it runs, as an NTP sync would.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bench.faketime import CLOCK_CACHE_S, faketime, faketime_library
from tests.support.daemon import DaemonProcess, write_config
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.payloads import other_codes
from tests.support.subscriber import Subscriber
from tests.support.tls import make_pki


def test_a_clock_behind_the_certificate_buffers_until_it_is_right(tmp_path: Path) -> None:
    clock_file = tmp_path / "clock-offset"
    lib, why_not = faketime_library()
    env, why_not = faketime(clock_file, lib) if lib else (None, why_not)
    if env is None:
        pytest.skip(why_not or "libfaketime unavailable")
    pki = make_pki(tmp_path / "pki")
    tls_port = free_port()
    broker = Mosquitto(
        tmp_path / "broker", extra=f"listener {tls_port} 127.0.0.1\n{pki.listener(client_certs=False)}"
    ).start()
    sub = Subscriber(broker.port)  # the plain listener, for the test's own view
    config = write_config(
        tmp_path / "device.toml",
        port=tls_port,
        storage=tmp_path / "state",
        broker={"host": "localhost", "port": tls_port, "tls": True, "ca": str(pki.ca_cert), "keepalive": 5},
    )
    clock_file.write_text(f"-{2 * 86400}\n")  # two days before the certificate's notBefore
    daemon = DaemonProcess(config, env=env).start()
    try:
        accepted = {daemon.scan(code)["event_id"] for code in other_codes(3)}
        time.sleep(3)  # several reconnect attempts (reconnect_max_s = 1)
        assert "connected to broker" not in daemon.stderr
        assert sub.events() == [], "a certificate not yet valid by the device's clock was trusted"

        clock_file.write_text("+0\n")  # NTP syncs
        time.sleep(CLOCK_CACHE_S)
        daemon.wait_log("connected to broker", timeout=20)
        events = sub.wait_event_ids(accepted, timeout=20)
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
        sub.close()
        broker.kill()
    assert {e["event_id"] for e in events} >= accepted
