"""The spec's exhaustive one-character mutations of the samples (every position x each of
`0-9 a-f A-F | / - $ space`, plus deletion): we must detect at least what the verifier detects, never
let a damaged card pass as an `other` code, and never quote the sample's personal data in a reason."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from device.payloads import Recognition, recognise
from tests.support.payloads import vectors
from tests.support.personal_data import personal_strings

ALPHABET = "0123456789abcdefABCDEF|/-$ "


def mutations(payload: str) -> Iterator[tuple[int, str]]:
    for i, ch in enumerate(payload):
        for sub in ALPHABET:
            if sub != ch:
                yield i, payload[:i] + sub + payload[i + 1 :]
        yield i, payload[:i] + payload[i + 1 :]


@pytest.mark.parametrize("kind", ["bhyt", "cccd"])
def test_one_character_mutations(kind: str) -> None:
    stats = vectors()["mutation_stats"][kind]
    tried = detected = 0
    for sample in vectors()[kind]:
        payload = sample["payload"]
        secrets = personal_strings(sample["fields"])
        structural = {i for i, ch in enumerate(payload) if ch in "|$"}
        for i, text in mutations(payload):
            rec: Recognition = recognise(text)
            tried += 1
            if rec.accepted:
                assert rec.type == kind, f"mutation at {i} accepted as {rec.type}"
                assert i not in structural, f"mutation of the separator/terminator at {i} accepted"
                continue
            detected += 1
            assert rec.type == kind, f"mutation at {i} rejected as {rec.type}: {rec.reason}"
            assert rec.reason
            leaked = [s for s in secrets if s in rec.reason]
            assert not leaked, f"reason {rec.reason!r} quotes personal data"
    assert tried == stats["mutations"]
    verifier = stats["detected"]
    assert detected >= verifier, f"{detected}/{tried} detected, the verifier detects {verifier}"
