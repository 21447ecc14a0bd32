"""Ingestion: typed layouts, keys, sorting, validation messages, atomic writes, data versions."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import os
from pathlib import Path

import polars as pl
import pytest

from hm_recsys import ingest as ingest_module
from hm_recsys import schema
from hm_recsys.ingest import (
    ARTICLES_LAYOUT,
    CUSTOMERS_LAYOUT,
    RawDataError,
    ingest,
    raw_dir_version,
    raw_file_version,
    read_articles,
    read_customers,
    read_date_range,
    read_transactions,
    write_table,
)
from hm_recsys.tables import load_tables


def _cid(i: int) -> str:
    return hashlib.sha256(f"customer-{i}".encode()).hexdigest()


ARTICLE_IDS = ["0108775015", "0108775044", "0110065001", "0955434002"]
CUSTOMER_IDS = [_cid(i) for i in range(3)]
TRANSACTIONS = [  # t_dat, customer, article, price, channel (the 2nd and 3rd rows are a 2-unit purchase)
    ("2020-09-01", 0, 1, "0.0508305084745762", "2"),
    ("2020-09-01", 2, 0, "0.0169322033898305", "1"),
    ("2020-09-01", 2, 0, "0.0169322033898305", "1"),
    ("2020-09-02", 1, 3, "0.0338813559322033", "2"),
    ("2020-09-08", 0, 2, "0.0084576271186440", "2"),
]


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as f:
        header, *rows = list(csv.reader(f))
    return header, rows


def _set_cell(path: Path, row: int, column: str, value: str) -> None:
    """Overwrite one cell; ``row`` is the 1-based data row."""
    header, rows = _read(path)
    rows[row - 1][header.index(column)] = value
    _write(path, header, rows)


def _article_row(i: int, article_id: str) -> list[str]:
    values = {
        "article_id": article_id, "product_code": article_id[:7].lstrip("0"), "prod_name": f"Prod {i}",
        "product_type_no": "253", "product_type_name": "Vest top", "product_group_name": "Garment Upper body",
        "graphical_appearance_no": "1010016", "graphical_appearance_name": "Solid", "colour_group_code": "9",
        "colour_group_name": "Black", "perceived_colour_value_id": "4", "perceived_colour_value_name": "Dark",
        "perceived_colour_master_id": "5", "perceived_colour_master_name": "Black", "department_no": "1676",
        "department_name": "Jersey Basic", "index_code": "A", "index_name": "Ladieswear", "index_group_no": "1",
        "index_group_name": "Ladieswear", "section_no": "16", "section_name": "Womens Everyday Basics",
        "garment_group_no": "1002", "garment_group_name": "Jersey Basic",
        "detail_desc": "" if i == 2 else f"Jersey top, \"quoted\", with, commas {i}",
    }
    return [values[c] for c in schema.ARTICLE_COLUMNS]


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    raw.mkdir()
    _write(raw / schema.ARTICLES_CSV, list(schema.ARTICLE_COLUMNS),
           [_article_row(i, a) for i, a in enumerate(ARTICLE_IDS)])
    _write(raw / schema.CUSTOMERS_CSV, list(schema.CUSTOMER_COLUMNS), [
        [CUSTOMER_IDS[0], "1.0", "1.0", "ACTIVE", "Regularly", "24", _cid(100)],
        [CUSTOMER_IDS[1], "", "", "PRE-CREATE", "NONE", "", _cid(100)],
        [CUSTOMER_IDS[2], "", "1.0", "", "", "52.0", _cid(101)],
    ])
    _write(raw / schema.TRANSACTIONS_CSV, list(schema.TRANSACTION_COLUMNS),
           [[d, CUSTOMER_IDS[c], ARTICLE_IDS[a], p, ch] for d, c, a, p, ch in TRANSACTIONS])
    return raw


def _schema_of(df: pl.DataFrame) -> list:
    return list(df.schema.items())


def test_typed_tables_have_the_contract_layouts(raw_dir: Path) -> None:
    articles = read_articles(raw_dir)
    customers = read_customers(raw_dir)
    tx = read_transactions(raw_dir, articles, customers)

    assert _schema_of(articles) == list(ARTICLES_LAYOUT.items())
    assert _schema_of(customers) == list(CUSTOMERS_LAYOUT.items())
    assert _schema_of(tx) == list(schema.TRANSACTIONS_TABLE_SCHEMA.items())

    assert articles["article_idx"].to_list() == [0, 1, 2, 3]
    assert articles["article_id"].to_list() == ARTICLE_IDS  # leading zeros kept
    assert articles["product_code"].to_list() == [108775, 108775, 110065, 955434]
    assert articles["detail_desc"].to_list()[0] == 'Jersey top, "quoted", with, commas 0'
    assert articles["detail_desc"][2] is None
    assert customers["customer_idx"].to_list() == [0, 1, 2]
    assert customers["FN"].to_list() == [1.0, None, None]
    assert customers["age"].to_list() == [24.0, None, 52.0]
    assert customers["club_member_status"].to_list() == ["ACTIVE", "PRE-CREATE", None]

    # Rows keep file order (sorted by date), duplicates kept, keys point at the right master rows.
    assert tx.height == len(TRANSACTIONS)
    assert tx["t_dat"].is_sorted()
    assert tx["t_dat"].to_list()[0] == dt.date(2020, 9, 1) and tx["t_dat"].to_list()[-1] == dt.date(2020, 9, 8)
    assert tx.select("customer_idx", "article_idx").rows() == [(c, a) for _, c, a, _, _ in TRANSACTIONS]
    assert tx.is_duplicated().sum() == 2
    assert tx["price"].to_list()[0] == pytest.approx(0.0508305084745762, rel=1e-6)
    assert tx["sales_channel_id"].to_list() == [2, 1, 1, 2, 2]


def test_ingest_writes_three_tables_and_summary(raw_dir: Path, tmp_path: Path) -> None:
    tables_dir = tmp_path / "tables"
    summary = ingest(raw_dir, tables_dir)

    tables = load_tables(tables_dir)
    assert tables.n_articles == 4 and tables.n_customers == 3 and tables.transactions.height == 5
    assert _schema_of(tables.transactions) == list(schema.TRANSACTIONS_TABLE_SCHEMA.items())
    assert sorted(p.name for p in tables_dir.iterdir()) == sorted(
        [schema.ARTICLES_TABLE, schema.CUSTOMERS_TABLE, schema.TRANSACTIONS_TABLE])
    assert summary["articles"] == {"rows": 4, "distinct_articles": 4, "distinct_products": 3,
                                   "empty_detail_desc": 1, "rows_with_negative_code": 0}
    assert summary["customers"] == {"rows": 3, "distinct_customers": 3, "empty_age": 1,
                                    "empty_club_member_status": 1, "empty_fashion_news_frequency": 1}
    assert summary["transactions"] == {
        "rows": 5, "distinct_customers": 3, "distinct_articles": 4,
        "first_date": "2020-09-01", "last_date": "2020-09-08", "distinct_days": 3, "duplicate_rows": 1,
    }


# (file, 1-based data row, column, bad value, words the message must contain)
BAD_CELLS = [
    (schema.ARTICLES_CSV, 2, "product_code", "12x", "not an integer"),
    (schema.ARTICLES_CSV, 3, "section_no", "1.5", "not an integer"),
    (schema.ARTICLES_CSV, 2, "article_id", "108775044", "not a 10-digit article_id"),
    (schema.ARTICLES_CSV, 4, "article_id", ARTICLE_IDS[1], "first seen in data row 2"),
    (schema.ARTICLES_CSV, 3, "article_id", "", "empty value"),
    (schema.CUSTOMERS_CSV, 2, "age", "abc", "not a number"),
    (schema.CUSTOMERS_CSV, 1, "FN", "yes", "not a number"),
    (schema.CUSTOMERS_CSV, 3, "customer_id", CUSTOMER_IDS[0], "first seen in data row 1"),
    (schema.CUSTOMERS_CSV, 2, "customer_id", "", "empty value"),
    (schema.TRANSACTIONS_CSV, 4, "t_dat", "2020-13-02", "not a YYYY-MM-DD date"),
    (schema.TRANSACTIONS_CSV, 3, "price", "abc", "not a number"),
    (schema.TRANSACTIONS_CSV, 3, "price", "-0.01", "price must be > 0 and <= 1.0"),
    (schema.TRANSACTIONS_CSV, 3, "price", "inf", "price must be > 0 and <= 1.0"),
    (schema.TRANSACTIONS_CSV, 3, "price", "1e300", "price must be > 0 and <= 1.0"),  # overflows the Float32 column
    (schema.TRANSACTIONS_CSV, 5, "sales_channel_id", "3", "must be one of (1, 2)"),
    (schema.TRANSACTIONS_CSV, 5, "sales_channel_id", "x", "not an integer"),
    (schema.TRANSACTIONS_CSV, 2, "article_id", "0999999999", "unknown article_id"),
    (schema.TRANSACTIONS_CSV, 2, "article_id", "108775015", "not a 10-digit article_id"),
    (schema.TRANSACTIONS_CSV, 4, "customer_id", _cid(99), "unknown customer_id"),
    (schema.TRANSACTIONS_CSV, 1, "customer_id", "", "empty value"),
]


@pytest.mark.parametrize("file, row, column, value, words", BAD_CELLS,
                         ids=[f"{f.split('.')[0]}-{c}-{v or 'empty'}" for f, _, c, v, _ in BAD_CELLS])
def test_bad_value_is_reported_with_file_column_row_value(raw_dir, tmp_path, file, row, column, value, words):
    _set_cell(raw_dir / file, row, column, value)
    with pytest.raises(RawDataError) as info:
        ingest(raw_dir, tmp_path / "tables")
    err, msg = info.value, str(info.value)
    assert (err.path.name, err.column, err.row) == (file, column, row)
    assert err.value == (value or None)
    for part in (file, repr(column), f"data row {row}", words):
        assert part in msg, msg
    if value:
        assert repr(value) in msg
    assert not (tmp_path / "tables").exists()


def test_first_offending_row_wins(raw_dir: Path) -> None:
    path = raw_dir / schema.TRANSACTIONS_CSV
    _set_cell(path, 5, "price", "abc")
    _set_cell(path, 2, "sales_channel_id", "7")
    with pytest.raises(RawDataError) as info:
        read_transactions(raw_dir, read_articles(raw_dir), read_customers(raw_dir))
    assert (info.value.row, info.value.column) == (2, "sales_channel_id")


def test_unsorted_transactions_are_refused(raw_dir: Path) -> None:
    _set_cell(raw_dir / schema.TRANSACTIONS_CSV, 3, "t_dat", "2020-08-30")
    with pytest.raises(RawDataError, match=r"data row 3.*'2020-08-30' comes after '2020-09-01'.*sorted by t_dat"):
        read_transactions(raw_dir, read_articles(raw_dir), read_customers(raw_dir))


@pytest.mark.parametrize("edit, words, column", [
    (lambda h: h[:-1], "missing column(s) ['sales_channel_id']", "sales_channel_id"),
    (lambda h: h + ["store"], "unexpected column(s) ['store']", "store"),
    (lambda h: [h[1], h[0], *h[2:]], "column 1 should be 't_dat' but is 'customer_id'", "customer_id"),
    (lambda h: [h[0].upper(), *h[1:]], "missing column(s) ['t_dat']", "t_dat"),
])
def test_header_errors_name_expected_and_found(raw_dir: Path, edit, words: str, column: str) -> None:
    path = raw_dir / schema.TRANSACTIONS_CSV
    header, rows = _read(path)
    _write(path, edit(header), rows)
    with pytest.raises(RawDataError) as info:
        read_transactions(raw_dir, read_articles(raw_dir), read_customers(raw_dir))
    msg = str(info.value)
    assert words in msg and "line 1 (header)" in msg and schema.TRANSACTIONS_CSV in msg
    assert "expected columns ['t_dat', 'customer_id'" in msg and "found [" in msg
    assert info.value.column == column


def test_missing_and_empty_files(raw_dir: Path) -> None:
    (raw_dir / schema.CUSTOMERS_CSV).unlink()
    with pytest.raises(RawDataError, match=rf"{schema.CUSTOMERS_CSV}: file not found"):
        read_customers(raw_dir)
    (raw_dir / schema.ARTICLES_CSV).write_text("")
    with pytest.raises(RawDataError, match="empty file"):
        read_articles(raw_dir)


def test_ragged_csv_line_is_reported_with_the_file(raw_dir: Path) -> None:
    path = raw_dir / schema.TRANSACTIONS_CSV
    path.write_text(path.read_text() + "2020-09-08,a,b,0.1,2,extra\n")
    with pytest.raises(RawDataError, match=rf"{schema.TRANSACTIONS_CSV}, data row 6 .*file line 7: 6 fields, "
                                           r"expected 5: extra value\(s\) \['extra'\]") as info:
        read_transactions(raw_dir, read_articles(raw_dir), read_customers(raw_dir))
    assert (info.value.row, info.value.value) == (6, ["extra"])


def test_failed_ingest_keeps_previous_tables(raw_dir: Path, tmp_path: Path) -> None:
    tables_dir = tmp_path / "tables"
    ingest(raw_dir, tables_dir)
    before = {p.name: p.read_bytes() for p in tables_dir.iterdir()}

    # A valid new article (its table would change) plus a bad transaction: nothing may be replaced.
    header, rows = _read(raw_dir / schema.ARTICLES_CSV)
    _write(raw_dir / schema.ARTICLES_CSV, header, rows + [_article_row(9, "0999999001")])
    _set_cell(raw_dir / schema.TRANSACTIONS_CSV, 5, "price", "-1")
    with pytest.raises(RawDataError):
        ingest(raw_dir, tables_dir)
    assert {p.name: p.read_bytes() for p in tables_dir.iterdir()} == before  # no temp files left either


def test_a_failed_write_replaces_none_of_the_tables(raw_dir: Path, tmp_path: Path, monkeypatch) -> None:
    tables_dir = tmp_path / "tables"
    ingest(raw_dir, tables_dir)
    before = {p.name: p.read_bytes() for p in tables_dir.iterdir()}
    _set_cell(raw_dir / schema.CUSTOMERS_CSV, 1, "age", "25")  # valid change: customers.parquet would differ

    written = []
    real_write = ingest_module.io.write_parquet

    def write_then_fail_on_third(df, path):
        if len(written) == 2:
            raise OSError("disk full")
        written.append(real_write(df, path))
        return written[-1]

    monkeypatch.setattr(ingest_module.io, "write_parquet", write_then_fail_on_third)
    with pytest.raises(OSError, match="disk full"):
        ingest(raw_dir, tables_dir)
    assert len(written) == 2
    assert {p.name: p.read_bytes() for p in tables_dir.iterdir()} == before


def test_transactions_need_masters_in_key_order(raw_dir: Path) -> None:
    customers = read_customers(raw_dir)
    with pytest.raises(ValueError, match="customer_idx column must be 0..n-1"):
        read_transactions(raw_dir, read_articles(raw_dir), customers.reverse())


def test_write_table_refuses_a_frame_that_is_not_a_typed_table(raw_dir: Path, tmp_path: Path) -> None:
    articles = read_articles(raw_dir)
    write_table(articles, tmp_path / schema.ARTICLES_TABLE)
    assert pl.read_parquet(tmp_path / schema.ARTICLES_TABLE).equals(articles)
    with pytest.raises(ValueError, match="not one of the typed table layouts"):
        write_table(articles.drop("article_idx"), tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()


def test_raw_file_version_follows_content_not_mtime(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"t_dat,x\n" + b"2020-09-01,1\n" * 1000)
    v1 = raw_file_version(path)
    os.utime(path, (1_000_000_000, 1_000_000_000))
    assert raw_file_version(path) == v1
    data = bytearray(path.read_bytes())
    data[5000] ^= 1
    path.write_bytes(bytes(data))
    assert raw_file_version(path) != v1
    with pytest.raises(RawDataError, match="file not found"):
        raw_file_version(tmp_path / "nope.csv")


def test_raw_dir_version_follows_paths_and_content(tmp_path: Path) -> None:
    images = tmp_path / "images"
    (images / "010").mkdir(parents=True)
    (images / "010" / "0108775015.jpg").write_bytes(b"\xff\xd8jpeg-a")
    (images / "011").mkdir()
    (images / "011" / "0110065001.jpg").write_bytes(b"\xff\xd8jpeg-b")
    v1 = raw_dir_version(images)
    for p in images.rglob("*"):
        os.utime(p, (1_000_000_000, 1_000_000_000))
    assert raw_dir_version(images) == v1
    (images / "011" / "0110065001.jpg").write_bytes(b"\xff\xd8jpeg-c")
    v2 = raw_dir_version(images)
    assert v2 != v1
    (images / "011" / "0110065001.jpg").rename(images / "011" / "0110065002.jpg")
    assert raw_dir_version(images) not in (v1, v2)


def test_read_date_range_reads_first_and_last_line(raw_dir: Path, tmp_path: Path) -> None:
    path = raw_dir / schema.TRANSACTIONS_CSV
    assert read_date_range(path) == (dt.date(2020, 9, 1), dt.date(2020, 9, 8))
    crlf = tmp_path / "crlf.csv"  # Windows line ends, no final newline, larger than the 64 KiB tail block
    lines = ["t_dat,customer_id,article_id,price,sales_channel_id"]
    lines += [f"2019-01-01,{_cid(0)},0108775015,0.01,2"] * 2000 + [f"2019-03-05,{_cid(1)},0108775015,0.01,1"]
    crlf.write_bytes("\r\n".join(lines).encode())
    assert read_date_range(crlf) == (dt.date(2019, 1, 1), dt.date(2019, 3, 5))

    header_only = tmp_path / "header_only.csv"
    header_only.write_text(lines[0] + "\n")
    with pytest.raises(RawDataError, match="no data rows"):
        read_date_range(header_only)
    bad = tmp_path / "bad.csv"
    bad.write_text(lines[0] + "\n" + lines[1] + "\n" + "20200101,x,y,1,2\n")
    with pytest.raises(RawDataError, match=r"column 't_dat', last line: '20200101' is not a YYYY-MM-DD date"):
        read_date_range(bad)
