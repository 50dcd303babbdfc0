"""How a config line names a scanner: a device path (glob allowed) or a USB vendor:product pair.

The ground floor, so that settings (which refuses a bad line at load time), the sources (which match
lines against what is plugged in) and provisioning all read one rule without importing each other.
"""

from __future__ import annotations

import re

VENDOR_PRODUCT = re.compile(r"^([0-9a-fA-F]{4}):([0-9a-fA-F]{4})$")


def selector_problem(selector: str) -> str | None:
    """Why a config line cannot name a device, or None."""
    if not selector.strip():
        return "an empty device name"
    if ":" in selector and not selector.startswith("/") and not VENDOR_PRODUCT.fullmatch(selector):
        return f"{selector!r} looks like vendor:product but is not two 4-digit hex numbers (e.g. 0c2e:0b61)"
    return None
