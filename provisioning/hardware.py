"""What reads codes and what answers on a device: `[scanner]` and `[feedback]` as provisioning writes them.

Defaults fit the Pi the README documents: a serial-mode scanner behind the udev link
/dev/qr-scanner-serial (systemd/99-qr-checkin.rules), LEDs and buzzer on GPIO17, 27 and 22. A kernel
name such as /dev/ttyACM0 is refused: it follows plug order, so after a reboot with a second USB
serial device (a modem on a bus) the daemon would read the wrong one.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from device.errors import ProvisionError
from device.settings import FeedbackSettings, GpioFeedbackSettings, ScannerSettings, gpio_pin
from device.sources.discovery import selector_problem

SCANNERS = ("serial", "hid", "camera", "stdin")
DEFAULT_SERIAL_PORT = "/dev/qr-scanner-serial"
DEFAULT_HID_DEVICE = "/dev/qr-scanner-hid"
# Kernel names that follow plug order (ttyACM0, ttyUSB1, event3), globs of them included.
UNSTABLE = re.compile(r"/dev/(tty(ACM|USB|S|AMA)|input/event)[0-9*?\[]")
PIN_OPTIONS = ("green", "red", "buzzer", "status", "relay")
_GPIO_DEFAULTS = GpioFeedbackSettings()


@dataclass(frozen=True, slots=True)
class Hardware:
    sources: tuple[str, ...] = ("serial",)
    serial_port: str = DEFAULT_SERIAL_PORT
    hid_devices: tuple[str, ...] = (DEFAULT_HID_DEVICE,)
    hid_layout: str = "us"
    feedback: str = "gpio"
    # Pins by use (BCM numbers; None leaves the part out), in the order the file lists them.
    pins: tuple[tuple[str, int | None], ...] = (
        ("green", _GPIO_DEFAULTS.green),
        ("red", _GPIO_DEFAULTS.red),
        ("buzzer", _GPIO_DEFAULTS.buzzer),
    )
    buzzer_kind: str = "active"

    def notes(self) -> list[str]:
        """What `qr-provision verify` will refuse on this production configuration, said at once."""
        notes = []
        if set(self.sources) == {"stdin"}:
            notes.append("scanner stdin reads nothing under systemd: `verify` will refuse this device")
        if self.feedback == "console":
            notes.append("feedback console shows nothing to a worker: `verify` will refuse this device")
        return notes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scanner and feedback (defaults: the README's Pi wiring)")
    group.add_argument(
        "--scanner",
        action="append",
        choices=SCANNERS,
        help="what reads codes; repeat for several (default serial)",
    )
    group.add_argument(
        "--serial-port",
        metavar="PORT",
        help=f"serial scanner: a /dev/serial/by-id/ link, a udev link or USB vendor:product "
        f"(default {DEFAULT_SERIAL_PORT})",
    )
    group.add_argument(
        "--hid-device",
        action="append",
        metavar="DEVICE",
        help=f"keyboard-mode scanner: a /dev/input/by-id/ link, vendor:product or a name pattern "
        f"(default {DEFAULT_HID_DEVICE}); repeat for several",
    )
    group.add_argument(
        "--hid-layout", choices=("us", "uk", "de", "fr"), help="the scanner's keyboard country"
    )
    group.add_argument("--feedback", choices=("gpio", "console"), default="gpio", help="default gpio")
    for use in PIN_OPTIONS:
        default = getattr(_GPIO_DEFAULTS, use)
        shown = f"default {default}" if default is not None else "default none"
        group.add_argument(
            pin_flag(use),
            dest=f"pin_{use}",
            metavar="PIN",
            help=f"BCM pin of the {use} ({shown}); none: no {use}",
        )
    group.add_argument("--buzzer-kind", choices=("active", "tonal"), default="active", help="default active")


def from_arguments(args: argparse.Namespace) -> Hardware:
    """The choices on the command line, checked as the daemon will check them; ProvisionError if not."""
    sources = tuple(dict.fromkeys(args.scanner or ["serial"]))
    if args.serial_port is not None and "serial" not in sources:
        raise ProvisionError("--serial-port needs --scanner serial")
    if (args.hid_device or args.hid_layout) and "hid" not in sources:
        raise ProvisionError("--hid-device and --hid-layout need --scanner hid")
    serial_port = args.serial_port or DEFAULT_SERIAL_PORT
    hid_devices = tuple(args.hid_device or [DEFAULT_HID_DEVICE])
    for option, selector in [("--serial-port", serial_port)] + [("--hid-device", d) for d in hid_devices]:
        check_stable(option, selector)
    typed = {use: getattr(args, f"pin_{use}") for use in PIN_OPTIONS}
    if args.feedback == "console" and any(pin is not None for pin in typed.values()):
        raise ProvisionError("GPIO pins need --feedback gpio")
    pins: list[tuple[str, int | None]] = []
    for use in PIN_OPTIONS:
        pin = pin_number(use, typed[use]) if typed[use] is not None else getattr(_GPIO_DEFAULTS, use)
        # A part with a default pin is written even when left out (as false), or the default returns.
        if pin is not None or getattr(_GPIO_DEFAULTS, use) is not None:
            pins.append((use, pin))
    hardware = Hardware(
        sources=sources,
        serial_port=serial_port,
        hid_devices=hid_devices,
        hid_layout=args.hid_layout or "us",
        feedback=args.feedback,
        pins=tuple(pins),
        buzzer_kind=args.buzzer_kind,
    )
    validate(hardware)
    return hardware


def check_stable(option: str, selector: str) -> None:
    if problem := selector_problem(selector):
        raise ProvisionError(f"{option} {selector!r}: {problem}")
    if UNSTABLE.match(selector):
        raise ProvisionError(
            f"{option} {selector!r} is a kernel name, numbered in plug order: after a reboot it can name "
            "another device. Give its /dev/serial/by-id/ or /dev/input/by-id/ link (`qr-checkin scanners` "
            "on the Pi lists them), the udev link /dev/qr-scanner-serial or -hid, or vendor:product"
        )


def pin_number(use: str, typed: str) -> int | None:
    try:
        return gpio_pin(typed)
    except ValueError as exc:
        raise ProvisionError(f"{pin_flag(use)} {exc}") from None


def pin_flag(use: str) -> str:
    return "--status-led" if use == "status" else f"--{use}"


def validate(hardware: Hardware) -> None:
    """The sections as the daemon reads them: a pin wired twice, a lone LED colour... named here."""
    try:
        ScannerSettings.model_validate(scanner_section(hardware))
        FeedbackSettings.model_validate(feedback_section(hardware))
    except ValidationError as exc:
        problems = "; ".join(err["msg"].removeprefix("Value error, ") for err in exc.errors())
        raise ProvisionError(f"scanner or feedback choices: {problems}") from None


def scanner_section(hardware: Hardware) -> dict[str, Any]:
    section: dict[str, Any] = {"sources": list(hardware.sources)}
    if "serial" in hardware.sources:
        section["serial"] = {"port": hardware.serial_port}
    if "hid" in hardware.sources:
        section["hid"] = {"devices": list(hardware.hid_devices), "layout": hardware.hid_layout}
    return section


def feedback_section(hardware: Hardware) -> dict[str, Any]:
    if hardware.feedback == "console":
        return {"backend": "console"}
    # TOML has no null: a part left out is written as false, which the daemon reads as "none".
    gpio: dict[str, Any] = {use: (pin if pin is not None else False) for use, pin in hardware.pins}
    gpio["buzzer_kind"] = hardware.buzzer_kind
    return {"backend": "gpio", "gpio": gpio}
