"""The web page in a real browser (Debian's Chromium via Playwright) over the whole chain: the real
daemon scans from stdin, a real mosquitto carries it, `qr-collector run` stores it in SQLite, and
`qr-collector web` serves the page. One stack for the module: the tests follow one office's morning.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from openpyxl import load_workbook
from playwright.sync_api import Browser, Page, expect

from collector import tables as t
from collector.reports import audit
from collector.reports.export import COLUMNS
from collector.reports.roster import import_roster
from collector.settings import load_settings
from collector.store import Store
from collector.web import accounts
from device.privacy import load_key
from tests.support.browser import browser, screenshot
from tests.support.collector import ROOT, CollectorProcess, wait_until, write_config
from tests.support.daemon import DaemonProcess
from tests.support.daemon import write_config as write_device_config
from tests.support.mosquitto import Mosquitto, free_port, wait_port
from tests.support.payloads import vectors

__all__ = ["browser"]
PASSWORD = "mật khẩu dài 2021"
# The roster: two workers with the synthetic CCCDs of tests/data (they scan) and four who do not.
SCANNED, CORIDER = vectors()["cccd"][:2]
WORKER = ("E001", SCANNED["fields"]["name"], "Tổ may 1", "98C-123.45", SCANNED["fields"]["id"])
OTHERS = [
    ("E002", CORIDER["fields"]["name"], "Tổ may 2", "98C-123.45", CORIDER["fields"]["id"]),
    *[(f"E00{i}", f"Trần Thị Thử {i}", "Tổ may 2", "98C-123.45", f"00109099990{i}") for i in range(3, 7)],
]
WAIT_MS = 20_000
WEB_COMMAND = (sys.executable, "-m", "collector.cli", "web")


@dataclass
class Stack:
    url: str
    store: Store
    daemon: DaemonProcess
    web: subprocess.Popen[bytes]
    web_log: Path
    masked: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("web")
    key_file = tmp / "site.key"
    load_key(key_file, create=True)
    broker = Mosquitto(tmp / "broker").start()
    db = f"sqlite:///{tmp / 'collector.db'}"
    config = write_config(
        tmp / "collector.toml",
        port=broker.port,
        url=db,
        privacy={"site_key_file": str(key_file)},
        logging={"level": "INFO"},
    )
    collector = CollectorProcess(config).start()
    daemon: DaemonProcess | None = None
    web: subprocess.Popen[bytes] | None = None
    store = Store(load_settings(config).database_url)
    try:
        collector.wait_connected()
        port = free_port()
        web_log = tmp / "web.log"
        with web_log.open("wb") as log:
            # Started first: it loads while the roster, the accounts and the daemon are made.
            web = subprocess.Popen(
                [*WEB_COMMAND, "--config", str(config), "--port", str(port), "--refresh", "2"],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        roster = tmp / "roster.csv"
        roster.write_text(
            "Mã NV,Họ và tên,Tổ,Xe/Cổng,Số CCCD\n"  # HR's own headings
            + "".join(",".join(row) + "\n" for row in [WORKER, *OTHERS]),
            encoding="utf-8",
        )
        assert not import_roster(store, roster, load_key(key_file, create=False), wall=time.time()).bad
        roster.unlink()  # HR's file holds the ID numbers: it does not stay
        for name, role in (("hr", "hr"), ("board", "board"), ("auditor", "auditor")):
            accounts.add_user(store, name, role, PASSWORD, wall=time.time(), replace=False)
        daemon = DaemonProcess(
            write_device_config(
                tmp / "device.toml",
                port=broker.port,
                storage=tmp / "state",
                location={
                    "id": "98C12345",
                    "kind": "bus",
                    "name": "Xe đưa đón 98C-123.45",
                    "address": "Thôn A",
                    "ward": "Xã Hương Gián",
                    "district": "Huyện Yên Dũng",
                    "province": "Bắc Giang",
                },
                privacy={"key_file": str(key_file)},
            )
        ).start()
        wait_port(port, timeout=20)
        # The daemon's birth status has reached the database: the bus is on the fleet.
        wait_until(lambda: store.count(t.devices) == 1, 20, "the device's status stored")
        yield Stack(f"http://127.0.0.1:{port}", store, daemon, web, web_log, masked="")
    finally:
        if web is not None:
            web.terminate()
            web.wait(10)
        if daemon is not None:
            daemon.stop()
        collector.stop()
        store.close()
        broker.kill()


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    context = browser.new_context(base_url=stack.url, accept_downloads=True, locale="vi-VN")
    try:
        yield context.new_page()
    finally:
        context.close()


def log_in(page: Page, name: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.get_by_label("Tên đăng nhập").fill(name)
    page.get_by_label("Mật khẩu").fill(password)
    page.get_by_role("button", name="Đăng nhập").click()


def test_a_wrong_password_and_a_missing_csrf_token_are_refused(page: Page) -> None:
    log_in(page, "hr", "not the password")
    expect(page.get_by_role("alert")).to_have_text("Sai tên đăng nhập hoặc mật khẩu.")
    assert page.url.endswith("/login")
    screenshot(page, "login-refused")
    # The same form without its CSRF token, sent by the browser: refused before the password is read.
    page.goto("/login")
    page.locator("section.login input[name=csrf_token]").evaluate("input => input.remove()")
    page.get_by_label("Tên đăng nhập").fill("hr")
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    with page.expect_response(re.compile(r"/login$")) as answer:
        page.get_by_role("button", name="Đăng nhập").click()
    assert answer.value.status == 400
    expect(page.locator("p.error")).to_contain_text("Biểu mẫu đã hết hạn")
    page.goto("/today")
    assert page.url.endswith("/login"), "not logged in after a refused form"


def test_a_typed_scan_appears_on_today(page: Page, stack: Stack) -> None:
    log_in(page, "hr")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Tình hình quét mã ngày")
    expect(page.locator("#total")).to_have_text("6")
    expect(page.locator("#scanned")).to_have_text("0")
    expect(page.get_by_role("cell", name=WORKER[1]).first).to_be_visible()
    decision = stack.daemon.scan(SCANNED["payload"])
    assert decision["feedback"] == "accepted", decision
    # Nobody touches the page: it refreshes itself until the collector has stored the scan.
    expect(page.locator("#scanned")).to_have_text("1", timeout=WAIT_MS)
    expect(page.get_by_role("cell", name=WORKER[1])).to_have_count(0)
    expect(page.get_by_role("cell", name=OTHERS[0][1]).first).to_be_visible()
    stack.masked = stack.store.rows(t.events)[0]["masked"]
    screenshot(page, "today", docs=True)


def test_history_exports_an_xlsx_that_openpyxl_opens_and_the_export_is_audited(
    page: Page, stack: Stack, tmp_path: Path
) -> None:
    log_in(page, "hr")
    page.get_by_role("link", name="Lịch sử").click()
    expect(page.locator("#total")).to_have_text("1 lượt quét")
    expect(page.get_by_role("cell", name="E001")).to_be_visible()
    page.get_by_label("Mục đích xuất file").fill("báo cáo Ban quản lý KCN")
    with page.expect_download() as download:
        page.locator("#export-xlsx").click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert path.suffix == ".xlsx"
    rows = list(load_workbook(path, read_only=True).worksheets[0].iter_rows(values_only=True))
    assert rows[0] == COLUMNS
    assert len(rows) == 2
    got = dict(zip(COLUMNS, rows[1], strict=True))
    assert got["employee_no"] == "E001" and got["location_kind"] == "bus"
    assert got["masked_id"] == stack.masked and SCANNED["fields"]["id"] not in str(rows)
    last = audit.entries(stack.store, 1)[-1]
    assert (last.actor, last.role, last.action, last.row_count) == ("hr", "hr", "export", 1)
    assert last.purpose == "báo cáo Ban quản lý KCN"
    screenshot(page, "history")


def test_a_trace_needs_a_case_number_and_is_audited(page: Page, stack: Stack) -> None:
    log_in(page, "hr")
    page.get_by_role("link", name="Truy vết").click()
    # Past the browser's own `required`: the server refuses a trace without a case number.
    token = page.locator("form.filters input[name=csrf_token]").input_value()
    refused = page.request.post(
        "/trace", form={"csrf_token": token, "employee": "E001", "from": "2020-01-01", "to": "2099-01-01"}
    )
    assert refused.status == 400
    assert stack.daemon.scan(CORIDER["payload"])["feedback"] == "accepted"
    wait_until(lambda: stack.store.count(t.events) == 2, 20, "the co-rider's scan stored")
    before = len(audit.entries(stack.store, 1000))
    page.get_by_label("Mã NV").fill("E001")
    page.get_by_label("Số hồ sơ ca bệnh").fill("F0-2021-0815")
    page.get_by_role("button", name="Truy vết").click()
    expect(page.locator("#summary")).to_have_text("Truy vết E001: 1 lần có mặt, 1 người có mặt cùng.")
    expect(page.get_by_role("cell", name=CORIDER["fields"]["name"])).to_be_visible()
    entries = audit.entries(stack.store, 1000)
    assert len(entries) == before + 1
    assert (entries[-1].action, entries[-1].purpose, entries[-1].actor) == ("trace", "F0-2021-0815", "hr")
    assert entries[-1].row_count == 1 and "E001" not in page.url
    screenshot(page, "trace")


def test_a_board_account_sees_counts_and_no_name(page: Page, stack: Stack) -> None:
    assert stack.masked, "runs after the scan"
    log_in(page, "board")
    sources = []
    expect(page.locator("#scanned")).to_have_text("<5")
    sources.append(page.content())
    screenshot(page, "today-board")
    for link in ("Lịch sử", "Thiết bị", "Địa điểm"):
        page.get_by_role("link", name=link).click()
        sources.append(page.content())
    page.get_by_role("link", name="Lịch sử").click()
    page.get_by_role("button", name="Xem").click()
    expect(page.get_by_role("cell", name="<5").first).to_be_visible()
    sources.append(page.content())
    screenshot(page, "history-board")
    assert page.get_by_role("link", name="Truy vết").count() == 0
    assert page.request.get("/trace").status == 403
    token = page.locator("form.filters input[name=csrf_token]").input_value()
    export = page.request.post("/history/export", form={"csrf_token": token, "format": "csv", "purpose": "x"})
    assert export.status == 403
    everything = "\n".join(sources)
    for person in [WORKER, *OTHERS]:
        assert person[1] not in everything and person[0] not in everything
    assert stack.masked not in everything
    assert SCANNED["fields"]["id"] not in everything


def test_english_is_selectable_and_locations_export(page: Page, stack: Stack, tmp_path: Path) -> None:
    log_in(page, "auditor")
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("link", name="Locations")).to_be_visible()
    page.get_by_role("link", name="Locations").click()
    expect(page.get_by_role("cell", name="Xe đưa đón 98C-123.45")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Export XLSX").click()
    path = tmp_path / "locations.xlsx"
    download.value.save_as(path)
    rows = list(load_workbook(path, read_only=True).worksheets[0].iter_rows(values_only=True))
    assert rows[0][0] == "location_id" and rows[1][0] == "98C12345"
    screenshot(page, "locations")
    page.get_by_role("link", name="Audit log").click()
    expect(page.locator("p.badge")).to_contain_text("The chain holds")
    expect(page.get_by_role("cell", name="F0-2021-0815")).to_be_visible()
    screenshot(page, "audit")


def test_a_stopped_daemon_shows_its_bus_offline_on_fleet(page: Page, stack: Stack) -> None:
    log_in(page, "hr")
    page.get_by_role("link", name="Thiết bị").click()
    row = page.locator("tr[data-device=bus-dev-1]")
    expect(row).to_have_attribute("data-presence", "online")
    assert stack.daemon.terminate() == 0
    # The daemon's last word, an offline status, reaches the collector; a reload shows it.
    deadline = time.monotonic() + WAIT_MS / 1000
    while row.get_attribute("data-presence") != "offline" and time.monotonic() < deadline:
        time.sleep(0.3)
        page.reload()
    expect(row).to_have_attribute("data-presence", "offline")
    expect(row.locator(".state")).to_have_text("ngoại tuyến")
    screenshot(page, "fleet", docs=True)


def test_the_server_log_holds_nothing_personal(stack: Stack) -> None:
    log = stack.web_log.read_text(encoding="utf-8", errors="replace")
    assert "Serving on" in log
    for person in [WORKER, *OTHERS]:
        assert person[1] not in log and person[0] not in log and person[4] not in log
    assert "F0-2021-0815" not in log and PASSWORD not in log
