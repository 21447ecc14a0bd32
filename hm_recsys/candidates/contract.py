"""The frame every candidate source returns, and the helpers that enforce it.

``customer_idx Int32, article_idx Int32, score Float32, rank Int16``: rank 0 is the best candidate of a
customer, articles are distinct per customer, and within a customer rank follows score (higher first, ties
broken by the smaller ``article_idx`` so that outputs are deterministic).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from hm_recsys.tables import Tables
from hm_recsys.weeks import past  # noqa: F401 (the time gate lives in weeks; hm_recsys.serving imports it from here)

CANDIDATE_SCHEMA: dict[str, pl.DataType] = {
    "customer_idx": pl.Int32,
    "article_idx": pl.Int32,
    "score": pl.Float32,
    "rank": pl.Int16,
}
KEYS = ["customer_idx", "article_idx"]
MAX_RANK = 32_767  # Int16


def empty_candidates() -> pl.DataFrame:
    return pl.DataFrame(schema=CANDIDATE_SCHEMA)


def rank_within_customer(scored: pl.DataFrame | pl.LazyFrame, top_n: int) -> pl.DataFrame:
    """Keep each customer's ``top_n`` best (customer_idx, article_idx, score) rows and number them 0..top_n-1."""
    if not 1 <= top_n <= MAX_RANK + 1:
        raise ValueError(f"top_n must be in 1..{MAX_RANK + 1}, got {top_n}")
    return (
        scored.lazy()
        .select(
            pl.col("customer_idx").cast(pl.Int32),
            pl.col("article_idx").cast(pl.Int32),
            pl.col("score").cast(pl.Float32),
        )
        .sort(["customer_idx", "score", "article_idx"], descending=[False, True, False])
        .with_columns(rank=pl.int_range(pl.len()).over("customer_idx").cast(pl.Int16))
        .filter(pl.col("rank") < top_n)
        .collect()
    )


def broadcast_ranking(ranking: pl.DataFrame, customers: pl.DataFrame, by: list[str] | None = None) -> pl.DataFrame:
    """Give every customer the same ranked list (``by`` = None) or the list of its group (join on ``by``).

    ``ranking`` holds article_idx / score / rank (plus the ``by`` columns); ``customers`` customer_idx (+ ``by``).
    """
    if not by:  # built in customer-then-rank order directly: no sort of a customers x n frame (82M rows at full scale)
        ids = customers["customer_idx"].cast(pl.Int32).unique().sort().to_numpy()
        ranked = ranking.select(list(CANDIDATE_SCHEMA)[1:]).sort("rank")
        return pl.DataFrame(
            {"customer_idx": np.repeat(ids, ranked.height),
             **{c: np.tile(ranked[c].to_numpy(), len(ids)) for c in ranked.columns}},
        ).cast(CANDIDATE_SCHEMA)
    cust = customers.select(["customer_idx", *by])
    joined = cust.join(ranking, on=by, how="inner")
    return joined.select(list(CANDIDATE_SCHEMA)).cast(CANDIDATE_SCHEMA).sort("customer_idx", "rank")


def restrict(frame: pl.DataFrame | pl.LazyFrame, customers: pl.Series | None):
    """Rows of ``frame`` whose customer_idx is in ``customers`` (all rows when None)."""
    if customers is None:
        return frame
    return frame.filter(pl.col("customer_idx").is_in(customers.cast(pl.Int32).implode()))


def target_customers(tables: Tables, customers: pl.Series | None) -> pl.DataFrame:
    """The customers a source must cover: the given ones, else every customer (production)."""
    if customers is None:
        return tables.customers.select(pl.col("customer_idx").cast(pl.Int32))
    bad = customers.filter((customers < 0) | (customers >= tables.n_customers))
    if bad.len():
        raise ValueError(
            f"customers: customer_idx {bad[0]} is outside the customers table (0..{tables.n_customers - 1})"
        )
    return pl.DataFrame({"customer_idx": customers.cast(pl.Int32).unique().sort()})


def decay(half_life_days: float) -> pl.Expr:
    """Weight of a purchase ``days_ago`` days before the cutoff: halves every ``half_life_days``."""
    if half_life_days <= 0:
        raise ValueError(f"half_life_days must be > 0, got {half_life_days}")
    return pl.lit(0.5, dtype=pl.Float64).pow(pl.col("days_ago").cast(pl.Float64) / half_life_days)


def packed_keys() -> pl.Expr:
    """One Int64 per (customer_idx, article_idx); for non-negative ids its order is (customer, article) order."""
    return (pl.col("customer_idx").cast(pl.Int64) * (1 << 32) + pl.col("article_idx").cast(pl.Int64)).alias("key")


def first_duplicate(frame: pl.DataFrame) -> tuple[int, int, int] | None:
    """(customer_idx, article_idx, count) of the smallest repeated pair, or None.

    Sorted packed keys, equal neighbours: ~16 bytes a row, where a hash set (is_duplicated) peaked at ~100
    (13 GiB for the 137M two-tower rows at full scale).
    """
    keys = frame.select(packed_keys().sort())["key"]
    if keys.len() < 2:
        return None
    same = (keys.slice(1) == keys.slice(0, keys.len() - 1)).arg_true()
    if not same.len():
        return None
    key = keys[int(same[0])]
    article = (key + 2**31) % 2**32 - 2**31
    return (key - article) >> 32, article, int((keys == key).sum())


def validate_candidates(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    """Raise a clear error if ``frame`` breaks the candidate contract; return it unchanged otherwise."""
    for col, dtype in CANDIDATE_SCHEMA.items():
        if col not in frame.columns:
            raise ValueError(f"candidates '{source}': column {col!r} is missing (has {frame.columns})")
        if frame.schema[col] != dtype:
            raise ValueError(f"candidates '{source}': column {col!r} is {frame.schema[col]}, expected {dtype}")
    nulls = frame.select(pl.col(list(CANDIDATE_SCHEMA)).null_count()).row(0, named=True)
    for col, n in nulls.items():
        if n:
            raise ValueError(f"candidates '{source}': column {col!r} has {n} null values")
    dup = first_duplicate(frame)
    if dup is not None:
        customer, article, times = dup
        raise ValueError(
            f"candidates '{source}': customer_idx {customer} has article_idx {article} "
            f"{times} times (articles must be distinct per customer)"
        )
    bad_rank = frame.filter(pl.col("rank") < 0)
    if bad_rank.height:
        raise ValueError(f"candidates '{source}': negative rank at row {bad_rank.row(0, named=True)}")
    return frame

