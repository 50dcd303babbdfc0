"""The web page without a browser: accounts (argon2id), the users command, the catalogue, the guards."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from collector.settings import load_settings
from collector.store import Store
from collector.web import accounts, i18n
from collector.web.app import create_app
from collector.web.tables import web_users
from tests.support.collector import ROOT, write_config

WEB = ROOT / "collector" / "web"
PASSWORD = "correct horse battery"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, Store]]:
    """A migrated SQLite database and its collector.toml."""
    yield from _site(tmp_path, f"sqlite:///{tmp_path / 'c.db'}")


@pytest.fixture
def both(tmp_path: Path, database: str) -> Iterator[tuple[Path, Store]]:
    """The same on SQLite and on PostgreSQL (tests/collector/conftest.py)."""
    yield from _site(tmp_path, database)


def _site(tmp_path: Path, url: str) -> Iterator[tuple[Path, Store]]:
    config = write_config(tmp_path / "collector.toml", port=1883, url=url)
    store = Store(load_settings(config).database_url)
    store.migrate()
    try:
        yield config, store
    finally:
        store.close()


@pytest.fixture
def app(site: tuple[Path, Store]) -> Flask:
    config, store = site
    return create_app(load_settings(config), store)


def test_passwords_are_argon2id_hashes_and_only_the_right_one_logs_in(both: tuple[Path, Store]) -> None:
    _, store = both
    accounts.add_user(store, "thu", "hr", PASSWORD, wall=time.time(), replace=False)
    stored = store.rows(web_users)[0]["password_hash"]
    assert stored.startswith("$argon2id$") and "m=65536" in stored and PASSWORD not in stored
    assert accounts.authenticate(store, "thu", PASSWORD) == accounts.User("thu", "hr")
    assert accounts.authenticate(store, "thu", PASSWORD + "x") is None
    assert accounts.authenticate(store, "nobody", PASSWORD) is None
    with pytest.raises(accounts.AccountError, match="exists"):
        accounts.add_user(store, "thu", "board", PASSWORD, wall=time.time(), replace=False)
    with pytest.raises(accounts.AccountError, match="at least 10"):
        accounts.add_user(store, "lan", "hr", "short", wall=time.time(), replace=False)
    with pytest.raises(accounts.AccountError, match="role"):
        accounts.add_user(store, "lan", "admin", PASSWORD, wall=time.time(), replace=False)
    accounts.add_user(store, "thu", "board", PASSWORD + "2", wall=time.time(), replace=True)
    assert accounts.authenticate(store, "thu", PASSWORD + "2") == accounts.User("thu", "board")


def test_users_add_reads_the_password_from_stdin_never_the_command_line(site: tuple[Path, Store]) -> None:
    config, store = site

    def users(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "collector.cli", "users", *args, "--config", str(config)],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )

    added = users("add", "hoa", "--role", "authority", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert "argon2id" in added.stdout and PASSWORD not in added.stdout + added.stderr
    assert accounts.authenticate(store, "hoa", PASSWORD) == accounts.User("hoa", "authority")
    assert users("list").stdout.split() == ["hoa", "authority"]
    refused = users("add", "lan", "--role", "hr", stdin="short\n")
    assert refused.returncode == 2 and "at least 10" in refused.stderr
    assert users("remove", "hoa").returncode == 0 and accounts.users(store) == []


def test_every_word_the_page_uses_has_its_vietnamese() -> None:
    said = set()
    for path in [*WEB.glob("templates/*.html"), WEB / "app.py"]:
        said |= set(re.findall(r'\b_\("((?:[^"\\]|\\.)+)"', path.read_text(encoding="utf-8")))
    assert len(said) > 60
    assert sorted(said - set(i18n.VI)) == []


def test_pages_need_a_login_every_post_a_csrf_token_and_redirects_stay_on_the_site(app: Flask) -> None:
    client = app.test_client()
    for path in ("/today", "/fleet", "/history", "/trace", "/locations", "/audit"):
        answer = client.get(path)
        assert answer.status_code == 302 and answer.headers["Location"].endswith("/login"), path
    assert client.post("/lang", data={"lang": "en"}).status_code == 400
    page = client.get("/login")
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    away = client.post("/lang", data={"csrf_token": token[1], "lang": "en", "next": "//elsewhere.example/"})
    assert away.headers["Location"] == "/today"
    assert "Log in" in client.get("/login").text
    assert client.get("/static/style.css").status_code == 200


def test_failed_logins_for_a_name_make_it_wait_and_the_right_password_resets_the_count(
    site: tuple[Path, Store],
) -> None:
    config, store = site
    accounts.add_user(store, "thu", "hr", PASSWORD, wall=time.time(), replace=False)
    now = [1_000_000.0]
    client = create_app(load_settings(config), store, clock=lambda: now[0]).test_client()

    def attempt(name: str, password: str) -> int:
        # A fresh token each time: logging in starts a new session, and with it a new token.
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
        assert token is not None
        form = {"csrf_token": token[1], "name": name, "password": password}
        return client.post("/login", data=form).status_code

    assert [attempt("thu", f"guess number {i}") for i in range(5)] == [401] * 5
    # Locked: even the right password is not tried, and the page says how long to wait.
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token is not None
    answer = client.post("/login", data={"csrf_token": token[1], "name": "thu", "password": PASSWORD})
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "60"
    assert "60" in answer.text
    # Another name (real or not) is not held back by this one's failures.
    assert attempt("nobody", "guess") == 401
    now[0] += 61
    assert attempt("thu", "one more guess") == 401
    assert attempt("thu", PASSWORD) == 429  # the sixth failure doubled the wait
    now[0] += 121
    assert attempt("thu", PASSWORD) == 302
    assert attempt("thu", "a fresh mistake") == 401  # the success forgot the failures
    assert attempt("thu", PASSWORD) == 302
