"""Union of the candidate sources: one row per (customer, article) any source proposed.

Each source's score and rank stay as ranker features (``<source>_score``, ``<source>_rank``, null where
the source did not propose the pair), plus ``n_sources`` (how many sources agree). ``write_union_buckets``
builds the same union one customer bucket at a time (see ``hm_recsys.buckets``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import polars as pl

from hm_recsys.buckets import DEFAULT_BUCKET_CUSTOMERS, bucket_writer, customer_buckets, write_bucket
from hm_recsys.candidates.contract import KEYS, packed_keys, validate_candidates
from hm_recsys.metrics import relevant_sets

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def union_candidates(sources: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Outer union of ``sources`` (name -> candidate frame), sorted by customer_idx, article_idx.

    Columns: customer_idx, article_idx, then ``<name>_score`` (Float32) and ``<name>_rank`` (Int16) for each
    source in name order, then ``n_sources`` (Int8).
    """
    if not sources:
        raise ValueError("union_candidates: no source given")
    names = sorted(sources)
    for name in names:
        if not _NAME.match(name):
            raise ValueError(f"union_candidates: source name {name!r} must be lower_snake_case")
        validate_candidates(sources[name], name)
    # Each (customer, article) packed into one uint64 whose order is (customer, article) order: the union is
    # the sorted distinct keys, and each source's columns are scattered to its keys' positions. Same rows as
    # a chain of full outer joins on the two columns, at a fraction of the time (two-thirds of the union
    # step at full scale went to those joins).
    packed = {name: _packed(sources[name], name) for name in names}
    keys = np.sort(np.concatenate([packed[n] for n in names]))
    keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if keys.size else keys  # np.unique hashes: 70x slower
    columns: dict[str, pl.Series | pl.Expr] = {
        "customer_idx": pl.Series((keys >> np.uint64(32)).astype(np.int32)),
        "article_idx": pl.Series((keys & np.uint64(0xFFFFFFFF)).astype(np.int32)),
    }
    n_sources = np.zeros(keys.size, dtype=np.int8)
    for name in names:
        pos = np.searchsorted(keys, packed[name])
        present = np.zeros(keys.size, dtype=bool)
        present[pos] = True
        n_sources += present
        for col in ("score", "rank"):
            values = np.zeros(keys.size, dtype=sources[name][col].to_numpy().dtype)
            values[pos] = sources[name][col].to_numpy()
            columns[f"{name}_{col}"] = pl.when(pl.lit(pl.Series(present))).then(pl.lit(pl.Series(values)))
    columns["n_sources"] = pl.Series(n_sources)
    return pl.select(**columns)


def _packed(frame: pl.DataFrame, name: str) -> np.ndarray:
    """``contract.packed_keys`` as a uint64 array (ids must be non-negative, so the order is kept)."""
    if frame.height and (frame["customer_idx"].min() < 0 or frame["article_idx"].min() < 0):
        bad = frame.filter((pl.col("customer_idx") < 0) | (pl.col("article_idx") < 0)).row(0, named=True)
        raise ValueError(f"candidates '{name}': negative customer_idx or article_idx in row {bad}")
    return frame.select(packed_keys())["key"].to_numpy().astype(np.uint64)


def write_union_buckets(
    source_paths: dict[str, Path],
    out_dir: str | os.PathLike,
    n_customers: int,
    bucket_customers: int = DEFAULT_BUCKET_CUSTOMERS,
    purchases: pl.DataFrame | None = None,
) -> dict:
    """``union_candidates`` one customer bucket at a time: ``out_dir/bucket=NNNN.parquet`` per bucket.

    Each source file (name -> candidate Parquet, best sorted by customer_idx so row groups can be skipped)
    is scanned with the bucket's customer range as predicate, so only that slice is ever loaded; the
    bucket's union is written before the next is read. The result equals ``union_candidates`` of the whole
    sources, split by bucket. ``purchases`` (the target week's transactions) adds per-source recall,
    summed over buckets. Returns metadata: rows, buckets, and per source rows / customers (/ recall).
    """
    if not source_paths:
        raise ValueError("write_union_buckets: no source given")
    names = sorted(source_paths)
    totals = {}
    for name in names:
        path = Path(source_paths[name])
        if not path.is_file():
            raise FileNotFoundError(f"candidates '{name}': file {path} not found (materialize the source first)")
        totals[name] = pl.scan_parquet(path).select(pl.len()).collect().item()
    truth = None if purchases is None else relevant_sets(purchases).lazy()
    parts = ["union", *names]
    stats = {n: {"rows": 0, "customers": 0, "hits": 0} for n in parts}
    relevant = 0
    buckets = customer_buckets(n_customers, bucket_customers)
    with bucket_writer(out_dir) as tmp:
        for bucket in buckets:
            frames = {n: bucket.rows(pl.scan_parquet(source_paths[n])).collect() for n in names}
            union = union_candidates(frames)
            write_bucket(union, tmp, bucket.index)
            bucket_truth = None if truth is None else bucket.rows(truth).collect()
            relevant += 0 if bucket_truth is None else bucket_truth.height
            for name, frame in [("union", union), *frames.items()]:
                s = stats[name]
                s["rows"] += frame.height
                s["customers"] += frame["customer_idx"].n_unique()
                if bucket_truth is not None:
                    s["hits"] += bucket_truth.join(frame.select(KEYS), on=KEYS, how="semi").height
        for name in names:
            if stats[name]["rows"] != totals[name]:
                raise ValueError(
                    f"candidates '{name}': {totals[name] - stats[name]['rows']} rows have a customer_idx outside "
                    f"0..{n_customers - 1} ({source_paths[name]})"
                )
    per_source = {}
    for name in parts:
        s = stats[name]
        per_source[name] = {"rows": s["rows"], "customers": s["customers"],
                            "mean_per_customer": s["rows"] / s["customers"] if s["customers"] else 0.0}
        if truth is not None and relevant:
            per_source[name]["recall"] = s["hits"] / relevant
    return {"rows": stats["union"]["rows"], "buckets": len(buckets), "bucket_customers": bucket_customers,
            "per_source": per_source}
