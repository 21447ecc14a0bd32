"""Raw Kaggle-schema CSVs -> typed Parquet tables (``schema.py`` layouts), validated before anything is written.

Every raw column is read as a string and cast with checks, so a bad value is reported with its file,
column, 1-based data row (the header is not counted) and the value itself, and 10-digit article ids
keep their leading zeros. The transactions file (31.8M rows on the real data) is parsed in one streaming
pass that keeps only the typed columns and a per-row "bad" flag (the same checks, evaluated in the
stream); only when a row is flagged is that raw row read again to say exactly what is wrong with it.

Polars pads a short line with nulls and only says "invalid utf-8" about foreign bytes, so a record
pass with the csv module (``_check_records``) counts fields and finds non-UTF-8 bytes exactly: always
on the two master files (about 2 s for 1.4M customers), on transactions only to explain a failure
(every transactions column is required, so a cut-short line is always flagged by the typed pass).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import polars as pl

from hm_recsys import io, schema

DATE_FORMAT = "%Y-%m-%d"
SALES_CHANNELS = (1, 2)
AGE_RANGE = (0, 120)
FLAG_VALUES = (0.0, 1.0)  # FN / Active: 1.0 or empty in the real data
# Prices are shelf price / 590 (real max 0.5915): above 1 is a price in currency units, not the Kaggle scale.
MAX_PRICE = 1.0
FIRST_POSSIBLE_DATE = dt.date(1947, 1, 1)  # H&M's first store; an earlier t_dat is a typo
ROW = "_row"  # 1-based data row number carried through validation
_HASH_DIGEST_BYTES = 16

ARTICLES_LAYOUT: dict[str, pl.DataType] = {"article_idx": pl.Int32, **schema.ARTICLE_COLUMNS}
CUSTOMERS_LAYOUT: dict[str, pl.DataType] = {"customer_idx": pl.Int32, **schema.CUSTOMER_COLUMNS}
TABLE_LAYOUTS: dict[str, dict[str, pl.DataType]] = {
    schema.ARTICLES_TABLE: ARTICLES_LAYOUT,
    schema.CUSTOMERS_TABLE: CUSTOMERS_LAYOUT,
    schema.TRANSACTIONS_TABLE: schema.TRANSACTIONS_TABLE_SCHEMA,
}


class RawDataError(ValueError):
    """A raw file that cannot become a typed table; says where (file, column, data row) and what (value)."""

    def __init__(self, path, problem: str, *, column: str | None = None, row: int | None = None,
                 value: object = None, where: str | None = None, line: int | None = None):
        self.path = Path(path)
        self.column = column
        self.row = row
        self.value = value
        parts = [str(self.path)]
        if column is not None:
            parts.append(f"column {column!r}")
        if where is not None:
            parts.append(where)
        elif row is not None:
            parts.append(f"data row {row} (1-based, header not counted)")
        if line is not None:
            parts.append(f"file line {line}")
        super().__init__(", ".join(parts) + f": {problem}")


# ----------------------------------------------------------------------------------------------
# Data versions of the raw files (for Dagster observable source assets).


def raw_file_version(path: str | os.PathLike) -> str:
    """Content hash (BLAKE2b-128, hex) of a file: changes with any byte, ignores mtime and name."""
    path = Path(path)
    if not path.is_file():
        raise RawDataError(path, "file not found")
    with path.open("rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=_HASH_DIGEST_BYTES)).hexdigest()


def raw_dir_version(directory: str | os.PathLike) -> str:
    """Content hash of a folder tree (e.g. the images): relative paths, sizes and file hashes, in sorted order.

    Renaming, adding, removing or editing any file changes it; touching mtimes does not.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise RawDataError(directory, "folder not found")
    digest = hashlib.blake2b(digest_size=_HASH_DIGEST_BYTES)
    files = sorted((p.relative_to(directory).as_posix(), p) for p in directory.rglob("*") if p.is_file())
    for rel, p in files:
        digest.update(f"{rel}\0{p.stat().st_size}\0{raw_file_version(p)}\n".encode())
    return digest.hexdigest()


def read_date_range(transactions_csv: str | os.PathLike) -> tuple[dt.date, dt.date]:
    """(first, last) ``t_dat`` from the first data line and the last line, without reading the file.

    Assumes the file is sorted by date, as the Kaggle file is; ``read_transactions`` checks that
    sorting and refuses an unsorted file, so a range read here is never silently wrong for long.
    """
    path = Path(transactions_csv)
    if not path.is_file():
        raise RawDataError(path, "file not found")
    with path.open("rb") as f:
        header = f.readline().decode("utf-8-sig").strip()
        if header.split(",")[0] != "t_dat":
            raise RawDataError(path, f"first header column should be 't_dat', found header {header!r}",
                               where="line 1 (header)")
        first = f.readline().strip()
        if not first:
            raise RawDataError(path, "no data rows")
        size = f.seek(0, os.SEEK_END)
        tail = b""
        block = 1 << 16
        while b"\n" not in tail.rstrip(b"\r\n") and len(tail) < size:
            start = max(0, size - len(tail) - block)
            f.seek(start)
            tail = f.read(size - start)
        last = tail.rstrip(b"\r\n").rsplit(b"\n", 1)[-1].strip()

    def parse(line: bytes, where: str) -> dt.date:
        value = line.split(b",", 1)[0].decode("utf-8", "replace").strip('"')
        try:
            return dt.datetime.strptime(value, DATE_FORMAT).date()
        except ValueError:
            raise RawDataError(path, f"{value!r} is not a YYYY-MM-DD date", column="t_dat", value=value,
                               where=where) from None

    first_date, last_date = parse(first, "first data line (line 2)"), parse(last, "last line")
    if last_date < first_date:
        raise RawDataError(path, f"last date {last_date} is before first date {first_date}: "
                                 "the file must be sorted by t_dat", column="t_dat")
    return first_date, last_date


# ----------------------------------------------------------------------------------------------
# Row checks: one definition serves both the in-memory master files and the diagnosis of a bad
# transaction row, so what is rejected and how it is described cannot drift apart.


@dataclass(frozen=True)
class _Check:
    column: str
    bad: pl.Expr  # true on an offending row of the raw (String) frame
    problem: str
    explain: Callable[[pl.DataFrame, int, object], str] | None = None  # longer message, given frame/row/value


def _parsed(column: str, dtype: pl.DataType) -> pl.Expr:
    """The typed value of a raw string column; null where it does not parse."""
    col = pl.col(column)
    if dtype == pl.String:
        return col
    if dtype == pl.Date:
        return col.str.to_date(DATE_FORMAT, strict=False)
    return col.cast(dtype, strict=False)


def _transaction_value(column: str) -> pl.Expr:
    """A raw transactions column parsed as its raw type, then narrowed to the table type (price Float64 -> Float32)."""
    return _parsed(column, schema.TRANSACTION_COLUMNS[column]).cast(schema.TRANSACTIONS_TABLE_SCHEMA[column])


def _describe(dtype: pl.DataType) -> str:
    if dtype == pl.Date:
        return "a YYYY-MM-DD date"
    if dtype.is_integer():
        return f"an integer ({dtype})"
    return f"a number ({dtype})"


def _type_checks(columns: dict[str, pl.DataType], required: tuple[str, ...]) -> dict[str, list[_Check]]:
    checks: dict[str, list[_Check]] = {}
    for name, dtype in columns.items():
        checks[name] = []
        if name in required:
            checks[name].append(_Check(name, pl.col(name).is_null(), "empty value in a required column"))
        if dtype != pl.String:
            checks[name].append(_Check(name, pl.col(name).is_not_null() & _parsed(name, dtype).is_null(),
                                       f"not {_describe(dtype)}"))
    return checks


def _article_id_format(column: str = "article_id") -> _Check:
    pattern = rf"^[0-9]{{{schema.ARTICLE_ID_DIGITS}}}$"
    return _Check(column, pl.col(column).is_not_null() & ~pl.col(column).str.contains(pattern),
                  f"not a {schema.ARTICLE_ID_DIGITS}-digit article_id")


def _unique(column: str) -> _Check:
    def explain(df: pl.DataFrame, row: int, value: object) -> str:
        first = df.filter(pl.col(column) == value)[ROW].min()
        return f"duplicate {column} {value!r}, first seen in data row {first}"

    return _Check(column, pl.col(column).is_not_null() & ~pl.col(column).is_first_distinct(), "duplicate", explain)


def _flatten(checks: dict[str, list[_Check]]) -> list[_Check]:
    """Column order first, then each column's checks in order: the first failing row's first failing column wins."""
    return [c for column_checks in checks.values() for c in column_checks]


def _article_checks() -> list[_Check]:
    checks = _type_checks(schema.ARTICLE_COLUMNS, required=("article_id",))
    checks["article_id"] += [_article_id_format(), _unique("article_id")]
    return _flatten(checks)


def _customer_checks() -> list[_Check]:
    checks = _type_checks(schema.CUSTOMER_COLUMNS, required=("customer_id",))
    checks["customer_id"].append(_unique("customer_id"))
    for flag in ("FN", "Active"):
        value = _parsed(flag, schema.CUSTOMER_COLUMNS[flag])
        checks[flag].append(_Check(flag, value.is_not_null() & ~value.is_in(FLAG_VALUES),
                                   "must be 1.0, 0 or empty"))
    age = _parsed("age", schema.CUSTOMER_COLUMNS["age"])  # NaN sorts above every number: rejected too
    checks["age"].append(_Check("age", age.is_not_null() & ~age.is_between(*AGE_RANGE),
                                f"age must be between {AGE_RANGE[0]} and {AGE_RANGE[1]} years (or empty)"))
    return _flatten(checks)


def _transaction_checks() -> list[_Check]:
    """Checks on a raw transactions frame that also carries ``customer_idx`` / ``article_idx`` (``_dense_key``)."""
    checks = _type_checks(schema.TRANSACTION_COLUMNS, required=tuple(schema.TRANSACTION_COLUMNS))
    checks["customer_id"].append(_Check(
        "customer_id", pl.col("customer_id").is_not_null() & pl.col("customer_idx").is_null(),
        f"unknown customer_id, not in {schema.CUSTOMERS_CSV}"))
    checks["article_id"] += [
        _article_id_format(),
        _Check("article_id", pl.col("article_id").is_not_null() & pl.col("article_idx").is_null(),
               f"unknown article_id, not in {schema.ARTICLES_CSV}"),
    ]
    day = _transaction_value("t_dat")
    today = dt.date.today()
    checks["t_dat"] += [
        _Check("t_dat", day > today, f"date after today ({today}): a sale cannot be in the future"),
        _Check("t_dat", day < FIRST_POSSIBLE_DATE, f"date before {FIRST_POSSIBLE_DATE}, when H&M opened: a typo?"),
    ]
    price = _transaction_value("price")  # must also fit the table's Float32
    checks["price"].append(_Check(
        "price", price.is_not_null() & ~(price.is_finite() & (price > 0) & (price <= MAX_PRICE)),
        f"price must be > 0 and <= {MAX_PRICE} (Kaggle prices are shelf price / 590)"))
    channel = _transaction_value("sales_channel_id")
    checks["sales_channel_id"].append(_Check(
        "sales_channel_id", channel.is_not_null() & ~channel.is_in(SALES_CHANNELS),
        f"sales_channel_id must be one of {SALES_CHANNELS}"))
    return _flatten(checks)


def _raise_first_violation(path: Path, df: pl.DataFrame, checks: list[_Check]) -> None:
    """Raise ``RawDataError`` for the first offending data row of ``df`` (which carries ``ROW``), if any."""
    firsts = df.select([pl.col(ROW).filter(c.bad).min().alias(str(i)) for i, c in enumerate(checks)]).row(0)
    hits = [(row, i) for i, row in enumerate(firsts) if row is not None]
    if not hits:
        return
    row, i = min(hits)
    check = checks[i]
    value = df.filter(pl.col(ROW) == row)[check.column][0]
    if check.explain is not None:
        problem = check.explain(df, row, value)
    else:
        problem = check.problem if value is None else f"{check.problem} (value {value!r})"
    raise RawDataError(path, problem, column=check.column, row=row, value=value)


# ----------------------------------------------------------------------------------------------
# Reading the three files.


def _csv_path(raw_dir: str | os.PathLike, name: str) -> Path:
    path = Path(raw_dir) / name
    if not path.is_file():
        raise RawDataError(path, "file not found")
    return path


def _check_header(path: Path, expected: list[str]) -> None:
    """The header must list exactly ``expected``, in order (the Kaggle layout), in UTF-8 (a BOM is allowed)."""
    with path.open("rb") as f:
        first = f.readline()
    if not first.strip():
        raise RawDataError(path, f"empty file, expected header {expected}", where="line 1 (header)")
    if b"\r" in first.rstrip(b"\r\n"):
        raise RawDataError(path, "lines end with a bare CR (old Mac style): save the file with LF or CRLF line ends",
                           where="line 1 (header)")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        near = first[max(0, exc.start - 20):exc.start + 20]
        raise RawDataError(path, f"not UTF-8: byte {first[exc.start:exc.start + 1]!r} at byte {exc.start}, in "
                                 f"{near!r}; the file must be saved as UTF-8",
                           where="line 1 (header)") from None
    found = next(csv.reader([text]), [])

    def fail(problem: str, column: str) -> None:
        raise RawDataError(path, f"{problem}; expected columns {expected}, found {found}", column=column,
                           where="line 1 (header)")

    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    duplicated = [c for i, c in enumerate(found) if c in found[:i]]
    if missing:
        fail(f"missing column(s) {missing}", missing[0])
    if extra:
        fail(f"unexpected column(s) {extra}", extra[0])
    if duplicated:
        fail(f"duplicated column(s) {duplicated}", duplicated[0])
    for position, (want, got) in enumerate(zip(expected, found), start=1):
        if want != got:
            fail(f"column {position} should be {want!r} but is {got!r} (wrong order)", got)


_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # what errors="surrogateescape" makes of a byte that is not UTF-8


def _check_records(path: Path, columns: list[str], up_to_row: int | None = None) -> None:
    """Raise for the first data row (up to ``up_to_row``) that has the wrong number of fields or non-UTF-8 bytes.

    The csv module is exact about quoted commas and line breaks, and with ``surrogateescape`` it keeps a
    foreign byte in place, so the row, column and raw value can be named: polars can do neither.
    """
    n = len(columns)
    with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
        reader = csv.reader(f, strict=True)
        next(reader, None)  # the header: _check_header's job
        row, line = 0, reader.line_num  # the last good record and the file line it ended on
        try:
            for row, fields in enumerate(reader, start=1):
                if len(fields) != n:
                    _raise_field_count(path, columns, row, reader.line_num, fields)
                if not all(map(str.isascii, fields)):
                    for column, value in zip(columns, fields):
                        if bad := _NOT_UTF8.search(value):
                            raw = value.encode("utf-8", "surrogateescape")
                            byte = bad.group().encode("utf-8", "surrogateescape")
                            raise RawDataError(path, f"not UTF-8: byte {byte!r} in value {raw!r}; the file must be "
                                                     "saved as UTF-8", column=column, row=row, value=raw,
                                               line=reader.line_num)
                if row == up_to_row:
                    return
                line = reader.line_num
        except csv.Error as exc:
            runaway = any(words in str(exc) for words in ("end of data", "field larger than field limit"))
            hint = " (a quote opened on this line and never closed?)" if runaway else ""
            raise RawDataError(path, f"not a readable CSV: {exc}{hint}", row=row + 1, line=line + 1) from None


def _raise_field_count(path: Path, columns: list[str], row: int, line: int, fields: list[str]) -> None:
    n = len(columns)
    if not fields:
        raise RawDataError(path, f"empty line, expected {n} fields", row=row, line=line)
    shown = ",".join(fields)
    shown = shown if len(shown) <= 200 else shown[:200] + "..."
    if len(fields) < n:
        hint = " (a quote opened and never closed?)" if any("\n" in v for v in fields) else ""
        raise RawDataError(path, f"{len(fields)} fields, expected {n}: the line is cut short, missing "
                                 f"{columns[len(fields):]}{hint}; line {shown!r}",
                           column=columns[len(fields)], row=row, line=line)
    raise RawDataError(path, f"{len(fields)} fields, expected {n}: extra value(s) {fields[n:]!r}; line {shown!r}",
                       row=row, value=fields[n:], line=line)


def _read_strings(path: Path, columns: dict[str, pl.DataType]) -> pl.DataFrame:
    """The whole file as String columns plus ``ROW``; a malformed CSV becomes a ``RawDataError``."""
    _check_header(path, list(columns))
    _check_records(path, list(columns))
    try:
        df = pl.read_csv(path, infer_schema=False).with_row_index(ROW, offset=1)
    except pl.exceptions.PolarsError as exc:
        raise RawDataError(path, f"not a readable CSV: {exc}") from None
    if df.height == 0:
        raise RawDataError(path, "no data rows, only the header")
    return df


def _typed_master(path: Path, columns: dict[str, pl.DataType], checks: list[_Check], idx: str) -> pl.DataFrame:
    raw = _read_strings(path, columns)
    _raise_first_violation(path, raw, checks)
    return raw.select(
        (pl.col(ROW) - 1).cast(pl.Int32).alias(idx),
        *[_parsed(name, dtype).cast(dtype).alias(name) for name, dtype in columns.items()],
    )


def read_articles(raw_dir: str | os.PathLike) -> pl.DataFrame:
    """articles.csv as ``ARTICLES_LAYOUT``: ``article_idx`` = 0..n-1 in file row order, ids as 10-digit strings."""
    path = _csv_path(raw_dir, schema.ARTICLES_CSV)
    return _typed_master(path, schema.ARTICLE_COLUMNS, _article_checks(), "article_idx")


def read_customers(raw_dir: str | os.PathLike) -> pl.DataFrame:
    """customers.csv as ``CUSTOMERS_LAYOUT``: ``customer_idx`` = 0..n-1 in file row order."""
    path = _csv_path(raw_dir, schema.CUSTOMERS_CSV)
    return _typed_master(path, schema.CUSTOMER_COLUMNS, _customer_checks(), "customer_idx")


def _dense_key(ids: str, master: pl.DataFrame, key: str) -> pl.Expr:
    """``key`` of each raw id: its row in ``master`` (row i has key i), null for an id not there.

    An Enum over the master ids maps every id to its category position in one hash look-up, with no
    join and no reordering of the 31.8M transaction rows.
    """
    if not master[key].equals(pl.Series(key, range(master.height), dtype=pl.Int32), check_names=False):
        raise ValueError(f"the {key} column must be 0..n-1 in row order, as read_articles/read_customers return")
    return pl.col(ids).cast(pl.Enum(master[ids]), strict=False).to_physical().cast(pl.Int32).alias(key)


def _scan_transactions(path: Path) -> pl.LazyFrame:
    return pl.scan_csv(path, infer_schema=False, row_index_name=ROW, row_index_offset=1)


def read_transactions(raw_dir: str | os.PathLike, articles: pl.DataFrame, customers: pl.DataFrame) -> pl.DataFrame:
    """transactions_train.csv as ``TRANSACTIONS_TABLE_SCHEMA`` with dense keys from the typed master tables.

    Rows keep file order, which must be sorted by ``t_dat`` (checked); exact duplicate rows are kept,
    they are several units of one article bought the same day.
    """
    path = _csv_path(raw_dir, schema.TRANSACTIONS_CSV)
    _check_header(path, list(schema.TRANSACTION_COLUMNS))
    keys = [_dense_key("customer_id", customers, "customer_idx"), _dense_key("article_id", articles, "article_idx")]
    types = schema.TRANSACTIONS_TABLE_SCHEMA
    typed = (
        _scan_transactions(path)
        .with_columns(keys)
        .select(
            ROW,
            *[(_transaction_value(name) if name in schema.TRANSACTION_COLUMNS else pl.col(name)).alias(name)
              for name in types],
            pl.any_horizontal(c.bad for c in _transaction_checks()).alias("_bad"),
        )
    )
    try:
        df = typed.collect(engine="streaming")
    except pl.exceptions.PolarsError as exc:
        _check_records(path, list(schema.TRANSACTION_COLUMNS))  # names the row when it can
        raise RawDataError(path, f"not a readable CSV: {exc}") from None
    if df.height == 0:
        raise RawDataError(path, "no data rows, only the header")

    first_bad = df.select(pl.col(ROW).filter("_bad").min()).item()
    if first_bad is not None:
        _diagnose_transaction_row(path, first_bad, keys)
    _check_sorted_by_date(path, df)
    return df.select(*types).with_columns(pl.col("t_dat").set_sorted())


def _diagnose_transaction_row(path: Path, row: int, keys: list[pl.Expr]) -> None:
    """Re-read raw data row ``row`` (failure path only) and raise the error that describes it."""
    raw = _scan_transactions(path).slice(row - 1, 1).with_columns(keys).collect()
    if raw.select(pl.any_horizontal(pl.col(schema.TRANSACTION_COLUMNS).is_null())).item():
        _check_records(path, list(schema.TRANSACTION_COLUMNS), up_to_row=row)  # a cut-short line, not a gap?
    _raise_first_violation(path, raw, _transaction_checks())
    raise RawDataError(path, "row rejected by the typed pass but no check explains it", row=row)


def _check_sorted_by_date(path: Path, df: pl.DataFrame) -> None:
    step_back = df.select(pl.col(ROW).filter(pl.col("t_dat").diff() < 0).min()).item()
    if step_back is not None:
        before, here = df.filter(pl.col(ROW).is_in([step_back - 1, step_back]))["t_dat"].dt.to_string()
        raise RawDataError(path, f"date {here!r} comes after {before!r} in the previous row: the file must be "
                                 "sorted by t_dat", column="t_dat", row=step_back, value=here)


# ----------------------------------------------------------------------------------------------
# Writing.


def _check_layout(df: pl.DataFrame) -> None:
    found = list(df.schema.items())
    if not any(found == list(layout.items()) for layout in TABLE_LAYOUTS.values()):
        raise ValueError(f"frame is not one of the typed table layouts {list(TABLE_LAYOUTS)}: {found}")


def write_table(df: pl.DataFrame, path: str | os.PathLike) -> Path:
    """Write one typed table (articles, customers or transactions layout) atomically as Parquet."""
    _check_layout(df)
    return io.write_parquet(df, path)


_SUMMARY_DISTINCT = {"article_idx": "distinct_articles", "customer_idx": "distinct_customers",
                     "product_code": "distinct_products"}
# Gaps the real data has and that stay legal, counted so that a change in them shows in asset metadata:
# 416 empty detail_desc, 1.2% empty ages, 0.4% empty club_member_status, 1.2% empty fashion_news_frequency.
_SUMMARY_EMPTY = ("detail_desc", "age", "club_member_status", "fashion_news_frequency")
_ARTICLE_CODES = [c for c, t in schema.ARTICLE_COLUMNS.items() if t.is_integer() and c != "product_code"]


def quality_counts(df: pl.DataFrame) -> dict[str, int]:
    """Legal but notable values of a typed table, for metadata: empty optional fields, codes of -1
    ("Unknown" in the real articles), exact duplicate transactions (several units bought at once)."""
    exprs = [pl.col(c).null_count().alias(f"empty_{c}") for c in _SUMMARY_EMPTY if c in df.columns]
    if set(_ARTICLE_CODES) <= set(df.columns):
        exprs.append(pl.any_horizontal(pl.col(_ARTICLE_CODES) < 0).sum().alias("rows_with_negative_code"))
    if list(df.schema.items()) == list(schema.TRANSACTIONS_TABLE_SCHEMA.items()):
        exprs.append((pl.len() - pl.struct(pl.all()).n_unique()).alias("duplicate_rows"))
    return {k: int(v) for k, v in df.select(exprs).row(0, named=True).items()} if exprs else {}


def table_summary(df: pl.DataFrame) -> dict:
    """Figures for asset metadata: rows, distinct keys, for transactions the date range, and ``quality_counts``."""
    summary: dict = {"rows": df.height}
    summary.update({label: df[key].n_unique() for key, label in _SUMMARY_DISTINCT.items() if key in df.columns})
    if "t_dat" in df.columns and df.height:
        summary["first_date"] = df["t_dat"].min().isoformat()
        summary["last_date"] = df["t_dat"].max().isoformat()
        summary["distinct_days"] = df["t_dat"].n_unique()
    summary.update(quality_counts(df))
    return summary


def ingest(raw_dir: str | os.PathLike, tables_dir: str | os.PathLike) -> dict[str, dict]:
    """Validate and convert all three raw files, then write the three tables.

    All files are read and validated before any is written; each table is written to a temporary file
    and the three are renamed into place only after all were written, so a failure leaves the previous
    tables untouched.
    """
    articles = read_articles(raw_dir)
    customers = read_customers(raw_dir)
    transactions = read_transactions(raw_dir, articles, customers)
    tables = {schema.ARTICLES_TABLE: articles, schema.CUSTOMERS_TABLE: customers,
              schema.TRANSACTIONS_TABLE: transactions}
    tables_dir = Path(tables_dir)
    with contextlib.ExitStack() as stack:
        for name, df in tables.items():
            _check_layout(df)
            io.write_parquet(df, stack.enter_context(io.atomic_path(tables_dir / name)))
    return {Path(name).stem: table_summary(df) for name, df in tables.items()}
