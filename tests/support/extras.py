"""What a test needs beyond the device's own install: the collector's extra, and Playwright.

On 32-bit Arm `make setup` installs the device's test set only (`.[test-device]`): the collector runs
on the site's server, never on a Pi, and PyPI has no armv7 wheels for jsonschema-rs (which needs a
Rust toolchain to build) or psycopg-binary, nor any 32-bit Arm build of Playwright. A test module that
imports one of them is skipped there with that reason, instead of failing to import. Everywhere
else `make setup` installs them, so a missing one there is a broken install: it fails as it would.
"""

from __future__ import annotations

import importlib
import platform

import pytest

# Where `make setup` installs the device's test set alone (the Makefile's ARM32): a 32-bit Arm userland.
DEVICE_ONLY = platform.machine() in {"armv6l", "armv7l", "armv8l"}

# The import names of the collector's extra and of Playwright (pyproject.toml).
EXTRA_MODULES = frozenset(
    {
        "alembic",
        "argon2",
        "babel",
        "flask",
        "flask_wtf",
        "jsonschema_rs",
        "lxml",
        "openpyxl",
        "orjson",
        "pika",
        "playwright",
        "prometheus_client",
        "psycopg",
        "sqlalchemy",
        "waitress",
    }
)


def reason(module: str, where: str) -> str:
    return (
        f"{where} needs {module}, which the device's test set does not install (make setup on 32-bit"
        " Arm: the collector's extra and Playwright have no armv7 wheels; see tests/support/extras.py)"
    )


def missing(exc: BaseException | None) -> str | None:
    """The extra's module an import failed on, or None when it failed on something else."""
    name = getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None
    top = name.split(".")[0] if isinstance(name, str) else None
    return top if DEVICE_ONLY and top in EXTRA_MODULES else None


def require_collector(where: str) -> None:
    """Skips what calls it (a conftest's directory, a test) when the collector's extra is not installed."""
    for module in sorted(EXTRA_MODULES - {"playwright"}):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if missing(exc) is None:
                raise
            pytest.skip(reason(module, where), allow_module_level=True)


class ExtraModule(pytest.Module):
    """A test module that skips, naming what is missing, when it imports an extra not installed."""

    def collect(self):  # type: ignore[no-untyped-def]
        try:
            return super().collect()
        except pytest.Collector.CollectError as exc:
            module = missing(exc.__cause__)
            if module is None:
                raise
            where = self.path.relative_to(self.config.rootpath).as_posix()
            pytest.skip(reason(module, where), allow_module_level=True)
