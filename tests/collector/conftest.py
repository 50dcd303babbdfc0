"""One suite over both databases: `database` is a fresh SQLite file or a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.extras import require_collector

require_collector("tests/collector")

from tests.support.postgres import Postgres  # noqa: E402 (after the skip where there is no collector)
from tests.support.reports_site import fresh_site, site  # noqa: E402, F401 (the reports' fixtures)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    server = Postgres().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL as an operator writes it in collector.toml."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'collector.db'}"
    server: Postgres = request.getfixturevalue("postgres")
    if not server.running:
        server.start()  # a test that stopped it and failed before starting it again
    return server.create_database()
