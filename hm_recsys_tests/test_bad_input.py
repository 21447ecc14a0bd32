"""Bad raw input: each case is one mutation of the tiny world's files and must give ONE RawDataError that
names the file, the column, the 1-based data row and the value, and must leave the previously written
tables byte-identical. Legal oddities (CRLF, BOM, duplicate rows, empty ages) must be accepted unchanged.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Callable

import polars as pl
import pytest

from hm_recsys import schema
from hm_recsys.ingest import RawDataError, ingest
from hm_recsys.paths import DataPaths
from hm_recsys.tables import load_tables

CSVS = (schema.ARTICLES_CSV, schema.CUSTOMERS_CSV, schema.TRANSACTIONS_CSV)
ART, CUS, TX = CSVS
MARK = "@@MARK@@"  # a cell placeholder, swapped for raw bytes after the csv module wrote the file
TINY_TX_ROWS = 18_750  # data rows of the tiny world's transactions_train.csv (seed 0): the last row, for the edits below


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f))
    return header, rows


def _write_rows(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows([header, *rows])


def set_cell(row: int, column: str, value: str | bytes) -> Callable[[Path], None]:
    """Overwrite one cell (``row`` 1-based); bytes are written raw, so they may be invalid UTF-8."""
    def edit(path: Path) -> None:
        header, rows = _rows(path)
        rows[row - 1][header.index(column)] = MARK if isinstance(value, bytes) else value
        _write_rows(path, header, rows)
        if isinstance(value, bytes):
            path.write_bytes(path.read_bytes().replace(MARK.encode(), value))
    return edit


def edit_header(change: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    """Rewrite the header only: it is checked before any data row is read."""
    def edit(path: Path) -> None:
        header, rows = _rows(path)
        _write_rows(path, change(header), rows)
    return edit


def both(*edits: Callable[[Path], None]) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        for e in edits:
            e(path)
    return edit


def edit_lines(change: Callable[[list[bytes]], list[bytes]]) -> Callable[[Path], None]:
    """Edit the file's physical lines (index 0 is the header, so data row r is index r)."""
    def edit(path: Path) -> None:
        path.write_bytes(b"\n".join(change(path.read_bytes().split(b"\n"))))
    return edit


def edit_bytes(change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        path.write_bytes(change(path.read_bytes()))
    return edit


def cut_row(row: int, keep: int) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        header, rows = _rows(path)
        rows[row - 1] = rows[row - 1][:keep]
        _write_rows(path, header, rows)
    return edit


def _replace_line(index: int, new: bytes) -> Callable[[list[bytes]], list[bytes]]:
    return lambda lines: [*lines[:index], new, *lines[index + 1:]]


ARTICLE_COLS, CUSTOMER_COLS, TX_COLS = (list(c) for c in (
    schema.ARTICLE_COLUMNS, schema.CUSTOMER_COLUMNS, schema.TRANSACTION_COLUMNS))
HEADER = "line 1 (header)"

# (id, file, mutation, column, data row, value, words that must be in the message)
BAD = [
    # Non-UTF-8 bytes, early and late, in each file (a bare UnicodeDecodeError before).
    ("latin1-articles", ART, set_cell(2, "prod_name", b"Caf\xe9 top"), "prod_name", 2, b"Caf\xe9 top",
     ["not UTF-8", r"byte b'\xe9'", "must be saved as UTF-8", "file line 3"]),
    ("cp1252-customers", CUS, set_cell(1500, "club_member_status", b"ACTIVE\x96"), "club_member_status", 1500,
     b"ACTIVE\x96", ["not UTF-8", r"byte b'\x96'"]),
    ("latin1-transactions", TX, set_cell(18000, "customer_id", b"\xff" * 3), "customer_id", 18000, b"\xff" * 3,
     ["not UTF-8", "must be saved as UTF-8"]),
    ("latin1-header", ART, edit_lines(_replace_line(0, ",".join(ARTICLE_COLS).replace("prod_name", "pr\xf6d")
                                                          .encode("latin-1"))),
     None, None, None, [HEADER, "not UTF-8", r"byte b'\xf6'"]),
    # Customers: impossible ages and flags.
    ("age-300", CUS, set_cell(7, "age", "300"), "age", 7, "300", ["between 0 and 120"]),
    ("age-negative", CUS, set_cell(8, "age", "-1.0"), "age", 8, "-1.0", ["between 0 and 120"]),
    ("age-nan", CUS, set_cell(9, "age", "nan"), "age", 9, "nan", ["between 0 and 120"]),
    ("age-text", CUS, set_cell(9, "age", "forty"), "age", 9, "forty", ["not a number"]),
    ("fn-2", CUS, set_cell(3, "FN", "2.0"), "FN", 3, "2.0", ["must be 1.0, 0 or empty"]),
    ("customer-duplicate", CUS, both(set_cell(2, "customer_id", "a" * 64), set_cell(4, "customer_id", "a" * 64)),
     "customer_id", 4, "a" * 64, ["duplicate customer_id", "first seen in data row 2"]),
    # Transactions: dates, prices, channels, ids.
    ("date-invalid", TX, set_cell(10, "t_dat", "2020-02-30"), "t_dat", 10, "2020-02-30", ["not a YYYY-MM-DD date"]),
    ("date-future", TX, set_cell(TINY_TX_ROWS, "t_dat", "2999-01-01"), "t_dat", TINY_TX_ROWS, "2999-01-01",
     ["date after today", "a sale cannot be in the future"]),
    ("date-typo-year", TX, set_cell(1, "t_dat", "0202-02-26"), "t_dat", 1, "0202-02-26", ["date before 1947-01-01"]),
    ("date-unsorted", TX, set_cell(5000, "t_dat", "2020-02-26"), "t_dat", 5000, "2020-02-26",
     ["comes after", "sorted by t_dat"]),
    ("price-negative", TX, set_cell(11, "price", "-0.02"), "price", 11, "-0.02", ["price must be > 0 and <= 1.0"]),
    ("price-zero", TX, set_cell(12, "price", "0"), "price", 12, "0", ["price must be > 0 and <= 1.0"]),
    ("price-currency-units", TX, set_cell(13, "price", "349.0"), "price", 13, "349.0", ["shelf price / 590"]),
    ("channel-3", TX, set_cell(14, "sales_channel_id", "3"), "sales_channel_id", 14, "3", ["one of (1, 2)"]),
    ("channel-0", TX, set_cell(15, "sales_channel_id", "0"), "sales_channel_id", 15, "0", ["one of (1, 2)"]),
    ("unknown-customer", TX, set_cell(16, "customer_id", "f" * 64), "customer_id", 16, "f" * 64,
     ["unknown customer_id, not in customers.csv"]),
    ("unknown-article", TX, set_cell(17, "article_id", "0999999999"), "article_id", 17, "0999999999",
     ["unknown article_id, not in articles.csv"]),
    # Headers.
    ("missing-column", CUS, edit_header(lambda h: h[:-1]), "postal_code", None, None,
     [HEADER, "missing column(s) ['postal_code']"]),
    ("extra-column", TX, edit_header(lambda h: h + ["store"]), "store", None, None,
     [HEADER, "unexpected column(s) ['store']"]),
    ("reordered-columns", CUS, edit_header(lambda h: [h[0], h[2], h[1], *h[3:]]), "Active", None, None,
     [HEADER, "column 2 should be 'FN' but is 'Active' (wrong order)"]),
    # Empty and header-only files, each file.
    *[(f"empty-{f.split('.')[0]}", f, edit_bytes(lambda b: b""), None, None, None, [HEADER, "empty file"])
      for f in CSVS],
    *[(f"header-only-{f.split('.')[0]}", f, edit_lines(lambda lines: lines[:1] + [b""]), None, None, None,
       ["no data rows, only the header"]) for f in CSVS],
    # Broken lines.
    ("truncated-article", ART, cut_row(7, 10), ARTICLE_COLS[10], 7, None,
     ["10 fields, expected 25", "cut short", "file line 8"]),
    ("truncated-customer", CUS, cut_row(20, 5), "age", 20, None, ["5 fields, expected 7", "missing ['age', 'postal_code']"]),
    ("truncated-last-transaction", TX, edit_bytes(lambda b: b.rstrip(b"\n")[:-12]), "sales_channel_id", TINY_TX_ROWS, None,
     ["4 fields, expected 5", "cut short"]),
    ("ragged-transaction", TX, edit_lines(lambda lines: [*lines[:30], lines[30] + b",9", *lines[31:]]), None, 30,
     ["9"], ["6 fields, expected 5", "extra value(s) ['9']"]),
    ("blank-line-transactions", TX, edit_lines(lambda lines: [*lines[:100], b"", *lines[100:]]), None, 100, None,
     ["empty line, expected 5 fields", "file line 101"]),
    ("unclosed-quote-customers", CUS, edit_lines(lambda lines: [*lines[:3], lines[3].replace(b",ACTIVE,", b',"ACTIVE,'),
                                                                *lines[4:]]), None, 3, None,
     ["not a readable CSV", "never closed", "file line 4"]),
    ("bare-cr-line-ends", ART, edit_bytes(lambda b: b.replace(b"\n", b"\r")), None, None, None,
     [HEADER, "bare CR"]),
]


@pytest.fixture(scope="module")
def good(tiny_world: DataPaths, tmp_path_factory) -> Path:
    """The tiny world's three CSVs and the tables ingested from them (the 'previous good run')."""
    root = tmp_path_factory.mktemp("good")
    (root / "raw").mkdir()
    for name in CSVS:
        shutil.copy(tiny_world.raw / name, root / "raw" / name)
    shutil.copytree(tiny_world.tables, root / "tables")
    return root


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _copy(good: Path, tmp_path: Path) -> tuple[Path, Path]:
    raw, tables = tmp_path / "raw", tmp_path / "tables"
    shutil.copytree(good / "raw", raw)
    shutil.copytree(good / "tables", tables)
    return raw, tables


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input_gives_one_clear_error_and_keeps_the_tables(good: Path, tmp_path: Path, case) -> None:
    _, file, mutate, column, row, value, words = case
    raw, tables = _copy(good, tmp_path)
    mutate(raw / file)

    with pytest.raises(RawDataError) as info:
        ingest(raw, tables)
    err, msg = info.value, str(info.value)
    assert (err.path.name, err.column, err.row, err.value) == (file, column, row, value), msg
    assert msg.count(file) == 1 and msg.startswith(str(raw / file)), msg
    if column is not None:
        assert f"column {column!r}" in msg, msg
    if row is not None:
        assert f"data row {row} (1-based" in msg, msg
    if value is not None and not isinstance(value, list):
        assert repr(value) in msg, msg
    for part in words:
        assert part in msg, msg
    assert _snapshot(tables) == _snapshot(good / "tables")  # nothing replaced, no temp files left


def _ingested(raw: Path, tables: Path) -> dict[str, pl.DataFrame]:
    ingest(raw, tables)
    t = load_tables(tables)
    return {"articles": t.articles, "customers": t.customers, "transactions": t.transactions}


LEGAL = {
    "crlf": lambda b: b.replace(b"\n", b"\r\n"),
    "utf8-bom": lambda b: b"\xef\xbb\xbf" + b,
    "crlf-and-bom": lambda b: b"\xef\xbb\xbf" + b.replace(b"\n", b"\r\n"),
    "no-final-newline": lambda b: b.rstrip(b"\n"),
}


@pytest.mark.parametrize("name", LEGAL)
def test_legal_variants_give_identical_tables(good: Path, tmp_path: Path, name: str) -> None:
    raw, tables = _copy(good, tmp_path)
    for file in CSVS:
        edit_bytes(LEGAL[name])(raw / file)
    assert (raw / TX).read_bytes() != (good / "raw" / TX).read_bytes()
    got = _ingested(raw, tables)
    expected = load_tables(good / "tables")
    for key, df in got.items():
        assert df.equals(getattr(expected, key)), key
    assert _snapshot(tables) == _snapshot(good / "tables")  # byte-identical Parquet too


def test_duplicate_rows_and_empty_ages_are_kept_and_counted(good: Path, tmp_path: Path) -> None:
    raw, tables = _copy(good, tmp_path)
    tx_lines = (raw / TX).read_bytes().splitlines()[1:]
    _, customers = _rows(raw / CUS)
    _, articles = _rows(raw / ART)
    summary = ingest(raw, tables)
    assert len(tx_lines) - len(set(tx_lines)) > 0  # the tiny world has multi-unit purchases
    assert summary["transactions"]["rows"] == len(tx_lines)
    assert summary["transactions"]["duplicate_rows"] == len(tx_lines) - len(set(tx_lines))
    age = CUSTOMER_COLS.index("age")
    assert summary["customers"]["empty_age"] == sum(r[age] == "" for r in customers) > 0
    desc = ARTICLE_COLS.index("detail_desc")
    assert summary["articles"]["empty_detail_desc"] == sum(r[desc] == "" for r in articles)
    assert summary["articles"]["rows_with_negative_code"] == 0


def test_unknown_codes_are_kept_and_counted(good: Path, tmp_path: Path) -> None:
    """The real articles use -1 for "Unknown" codes: legal, counted for metadata."""
    raw, tables = _copy(good, tmp_path)
    set_cell(3, "product_type_no", "-1")(raw / ART)
    set_cell(5, "colour_group_code", "-1")(raw / ART)
    summary = ingest(raw, tables)
    assert summary["articles"]["rows_with_negative_code"] == 2
    assert load_tables(tables).articles["product_type_no"][2] == -1
