"""Customer buckets: the unit the memory-bounded ranking path loads, processes and writes one at a time.

Customers are split into contiguous ``customer_idx`` ranges of ``bucket_customers``; an artifact is a
folder holding one Parquet file per bucket (``bucket=0003.parquet`` for customers 3*B .. 4*B-1). Every
bucket has a file, empty ones included, so a folder is complete by construction and
``pl.scan_parquet(folder)`` reads the whole artifact lazily. Folders are written to a temporary folder
that is renamed into place at the end (``io.atomic_path``): a reader sees the old artifact or the new one.

Sizing ``DEFAULT_BUCKET_CUSTOMERS``: the feature and scoring steps hold one bucket's feature frame plus the
joins' and CatBoost's transient copies, a peak that grows linearly with the bucket's candidate rows
(benchmarks/bucketed_memory.py fits it and extrapolates). At ~195 candidates per customer, 12,500 customers
(~2.4M rows, 110 buckets for the full data): on the full world one bucket's features peaked 3.81 GiB against
5.27 GiB for 25,000 (the loaded tables and image vectors included), in the same 7 s, and the union step took
99 s / 1.52 GiB against 115 s / 1.98 GiB (docs/measurements.md). Which rows the ranker trains on and what it
recommends do not depend on the size.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import polars as pl

from hm_recsys.io import atomic_path

DEFAULT_BUCKET_CUSTOMERS = 12_500
_FILE = re.compile(r"^bucket=(\d+)\.parquet$")


@dataclass(frozen=True)
class Bucket:
    """Bucket ``index``: customers ``start`` .. ``stop - 1``."""

    index: int
    start: int
    stop: int

    def rows(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        """Rows of ``frame`` whose customer is in this bucket (a range predicate: Parquet row groups are skipped)."""
        return frame.filter(pl.col("customer_idx").is_between(self.start, self.stop, closed="left"))


def bucket_file_name(index: int) -> str:
    return f"bucket={index:04d}.parquet"


def customer_buckets(n_customers: int, bucket_customers: int) -> list[Bucket]:
    """The buckets covering customers 0..n_customers-1, the last one possibly shorter."""
    if bucket_customers < 1:
        raise ValueError(f"bucket_customers must be >= 1, got {bucket_customers}")
    if n_customers < 0:
        raise ValueError(f"n_customers must be >= 0, got {n_customers}")
    return [
        Bucket(i, start, min(start + bucket_customers, n_customers))
        for i, start in enumerate(range(0, n_customers, bucket_customers))
    ]


def bucket_files(folder: str | os.PathLike) -> list[Path]:
    """The bucket files of a bucketed dataset in bucket order; raises if the folder is missing or not one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: bucketed dataset folder not found (materialize it first)")
    found = sorted(((int(m.group(1)), p) for p in folder.iterdir() if (m := _FILE.match(p.name))))
    others = sorted(p.name for p in folder.iterdir() if not _FILE.match(p.name))
    if others:
        raise ValueError(f"{folder}: not a bucketed dataset, unexpected file(s) {others[:5]}")
    indices = [i for i, _ in found]
    if indices != list(range(len(indices))):
        raise ValueError(f"{folder}: bucket files are not numbered 0..n-1 without gaps: {indices[:10]}...")
    return [p for _, p in found]


def scan_buckets(folder: str | os.PathLike) -> pl.LazyFrame:
    """The whole bucketed dataset as one lazy frame (checked for completeness first)."""
    files = bucket_files(folder)
    if not files:
        raise ValueError(f"{folder}: bucketed dataset has no bucket file")
    return pl.scan_parquet(files)


@contextlib.contextmanager
def bucket_writer(folder: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder to write bucket files into; it replaces ``folder`` only on success."""
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        yield tmp


def write_bucket(frame: pl.DataFrame, folder: Path, index: int) -> Path:
    path = folder / bucket_file_name(index)
    frame.write_parquet(path, compression="zstd", statistics=True)
    return path
