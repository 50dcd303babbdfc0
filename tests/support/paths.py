"""Where the tests' data lives: inside the repository, so a clone on its own runs every test."""

from __future__ import annotations

from pathlib import Path

# The repository: tests also check what it ships (systemd units, scripts).
ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
# Synthetic BHYT/CCCD samples (invented people) and corrupted variants with the reason each must fail.
PAYLOADS_JSON = DATA / "qr-payloads.json"
# Real photographs of QR codes from the ZXing test suites, with their expected text (see its README).
PHOTOS = DATA / "qr-photos"
