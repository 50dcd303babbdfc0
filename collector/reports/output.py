"""Rows to the screen or a file: aligned text, JSON, CSV (UTF-8 with a BOM, so Excel shows Vietnamese)
or XLSX (openpyxl's write_only mode: rows stream to the file, memory stays flat).

The commands format what the report functions return; nothing here queries the database.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

FORMATS_TABLE = ("table", "csv", "xlsx")
FORMATS_ALL = ("table", "json", "csv", "xlsx")
# One sheet holds 1 048 576 rows: a longer export continues on the next sheet (header repeated).
XLSX_ROWS = 1_048_575


def cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return value


def write_csv(columns: Sequence[str], rows: Iterable[Sequence[Any]], out: IO[str]) -> int:
    """Rows of text, numbers and None (an empty cell): the csv module writes them as they are."""
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    count = 0

    def counted() -> Iterator[Sequence[Any]]:
        nonlocal count
        for row in rows:
            count += 1
            yield row

    writer.writerows(counted())
    return count


def write_xlsx(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], path: Path | IO[bytes], *, title: str = "report"
) -> int:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    count = 0
    sheet = None
    for row in rows:
        if sheet is None or count % XLSX_ROWS == 0:
            sheet = book.create_sheet(title if count == 0 else f"{title} {count // XLSX_ROWS + 1}")
            sheet.append(list(columns))
        sheet.append(row)
        count += 1
    if sheet is None:
        book.create_sheet(title).append(list(columns))
    book.save(path)
    return count


def table_lines(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    texts = [[str(cell(v)) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in texts)]) for i, c in enumerate(columns)]
    yield "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()
    for r in texts:
        yield "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()


def emit(
    fmt: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    output: str | None,
    title: str = "report",
    document: Any = None,
) -> int:
    """Writes rows in `fmt` to `output` (a path; stdout for table, json and csv when None).

    `document` is what JSON prints (the whole report object); the other formats print the rows.
    """
    if fmt == "xlsx":
        if not output:
            raise ValueError("--format xlsx needs --output FILE.xlsx")
        return write_xlsx(columns, rows, Path(output), title=title)
    stream: IO[str]
    handle = open(output, "w", encoding="utf-8", newline="") if output else None  # noqa: SIM115
    stream = handle or sys.stdout
    try:
        if fmt == "csv":
            return write_csv(columns, rows, stream)
        if fmt == "json":
            body = document if document is not None else [dict(zip(columns, r, strict=True)) for r in rows]
            stream.write(json.dumps(body, ensure_ascii=False, default=_json_default, indent=1) + "\n")
            return len(body) if isinstance(body, list) else 1
        count = 0
        for line in table_lines(columns, rows):
            stream.write(line + "\n")
            count += 1
        return max(count - 1, 0)
    finally:
        if handle is not None:
            handle.close()


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")
