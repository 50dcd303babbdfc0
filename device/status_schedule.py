"""When the device publishes its retained status: the presence protocol, without a socket.

- a birth on every new connection, a heartbeat every `heartbeat_s`, and at once when asked (a
  provisioning check, a scanner plugged in, a replay answered);
- a status the broker refused is not sent again on that connection (the events need the link, and
  each refusal would be another alarm), but on the next one; after more refusals in a row the next
  connections wait a pause first (RETRY_S, doubling), because mosquitto with max_queued_messages 0 drops
  the link after every refused publish and a status on every connection would starve the events.
"""

from __future__ import annotations

RETRY_S = (10.0, 600.0)


class StatusSchedule:
    def __init__(self, heartbeat_s: float) -> None:
        self.heartbeat_s = heartbeat_s
        self.refused = False
        self._refusals = 0
        self._retry_at = 0.0
        self._last_sent = float("-inf")

    def connected(self, now: float) -> None:
        """A new connection: a status refused before may be tried again now."""
        if now >= self._retry_at:
            self.refused = False

    def may_send(self) -> bool:
        return not self.refused

    def due(self, now: float) -> bool:
        """Whether the heartbeat is due (whether or not it may be sent)."""
        return now - self._last_sent >= self.heartbeat_s

    def sent(self, now: float) -> None:
        self._last_sent = now

    def answered(self, refused: bool, now: float) -> bool:
        """Records the broker's answer; True for the first refusal of an episode (worth an alarm)."""
        if not refused:
            self._refusals = 0
            return False
        self.refused = True
        self._refusals += 1
        low, high = RETRY_S
        self._retry_at = now if self._refusals == 1 else now + min(high, low * 2 ** (self._refusals - 2))
        return self._refusals == 1
