"""The presence protocol's timing and the connection helpers, without a socket."""

from __future__ import annotations

import random
import ssl

from device.mqtt_client import describe_connect_error, reconnect_delay
from device.status_schedule import RETRY_S, StatusSchedule


def test_birth_heartbeat_and_sending_at_once() -> None:
    schedule = StatusSchedule(heartbeat_s=60)
    assert schedule.due(0.0) and schedule.may_send()
    schedule.sent(0.0)
    assert not schedule.due(59.9) and schedule.due(60.0)


def test_a_refused_status_waits_for_the_next_connection_then_for_growing_pauses() -> None:
    schedule = StatusSchedule(heartbeat_s=60)
    assert schedule.answered(refused=True, now=0.0), "the first refusal is worth an alarm"
    assert not schedule.may_send()
    schedule.connected(1.0)  # the next connection tries again at once
    assert schedule.may_send()
    assert not schedule.answered(refused=True, now=2.0), "one alarm per episode"
    schedule.connected(3.0)
    assert not schedule.may_send(), "a second refusal in a row: a pause first"
    schedule.connected(2.0 + RETRY_S[0])
    assert schedule.may_send()
    schedule.answered(refused=True, now=20.0)
    schedule.connected(20.0 + RETRY_S[0])
    assert not schedule.may_send(), "the pause doubled"
    schedule.connected(20.0 + 2 * RETRY_S[0])
    assert schedule.may_send()
    assert not schedule.answered(refused=False, now=50.0)
    assert schedule.answered(refused=True, now=60.0), "accepted in between: a new episode"


def test_reconnect_delays_double_with_jitter_up_to_the_limit() -> None:
    rng = random.Random(7)
    delays = [reconnect_delay(n, 0.5, 30.0, rng) for n in range(12)]
    for n, delay in enumerate(delays):
        cap = min(30.0, 0.5 * 2**n)
        assert cap / 2 <= delay <= cap
    assert max(delays) <= 30.0 and len(set(delays)) == len(delays), "jittered"


def test_connection_errors_are_named_the_same_way_each_time() -> None:
    wrong = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    wrong.verify_message = "Hostname mismatch, certificate is not valid for 'broker'."
    assert describe_connect_error(wrong) == (
        True,
        "certificate verify failed: Hostname mismatch, certificate is not valid for 'broker'.",
    )
    # The real handshakes (wrong host, untrusted CA) are in test_publisher.py, against mosquitto.
    tls, text = describe_connect_error(ssl.SSLError(1, "wrong version number"))
    assert tls and "wrong version number" in text
    refused = ConnectionRefusedError(111, "Connection refused")
    assert describe_connect_error(refused) == (False, "Connection refused")
    assert describe_connect_error(None) == (False, "unknown error")
