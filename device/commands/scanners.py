"""`qr-checkin scanners`: the input and serial devices attached, with the config line naming each."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from device.sources.inventory import DeviceEntry, Inventory

SECTIONS = {"input": ("scanner.hid", "devices"), "serial": ("scanner.serial", "port")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    # Where dev/ and sys/ live: "/" on a device; a prepared tree in tests.
    parser.add_argument("--root", default="/", help=argparse.SUPPRESS)


def selector(entry: DeviceEntry) -> str:
    """The most stable way to name the device: its by-id link, else USB ids, else its name."""
    by_id = [link for link in entry.links if "/by-id/" in link]
    return by_id[0] if by_id else entry.usb_id or entry.name or entry.path


def config_line(entry: DeviceEntry) -> str:
    section, key = SECTIONS[entry.kind]
    value = selector(entry)
    return f"[{section}] {key} = " + (json.dumps([value]) if key == "devices" else json.dumps(value))


def describe(entry: DeviceEntry) -> dict[str, Any]:
    return {**asdict(entry), "usb_id": entry.usb_id, "keyboard": entry.keyboard, "config": config_line(entry)}


def main(args: argparse.Namespace) -> int:
    inventory = Inventory(args.root)
    found = {"input": inventory.input_devices(), "serial": inventory.serial_devices()}
    if args.json:
        print(json.dumps({kind: [describe(e) for e in entries] for kind, entries in found.items()}, indent=2))
        return 0
    titles = {
        "input": "Input devices (keyboard-mode scanners; 'keyboard' marks those with letter keys):",
        "serial": "USB serial ports (serial-mode scanners, preferred: CCCD names arrive intact):",
    }
    for kind, entries in found.items():
        print(titles[kind])
        if not entries:
            print("  none found")
        for entry in entries:
            print(f"  {entry.reader}" + (f" -> {entry.path}" if entry.reader != entry.path else ""))
            facts = [
                f'name "{entry.name}"' if entry.name else "",
                f"usb {entry.usb_id}" if entry.usb_id else "",
            ]
            facts += ["keyboard" if entry.keyboard else "", f"serial {entry.serial}" if entry.serial else ""]
            print("    " + "  ".join(fact for fact in facts if fact))
            print(f"    config: {config_line(entry)}")
    return 0
