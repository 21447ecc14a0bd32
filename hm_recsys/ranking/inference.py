"""The `final` recommendation: the ranker's top-k per customer, filled with best sellers to exactly k.

Customers with fewer than k candidates (or none: no history and no proposal) are topped up from the
popular list by ``submission.fill_popular``, so every customer appears exactly once in the submission.
``rank_in_chunks`` builds features and scores a slice of customers at a time: at full scale the feature
frame of every customer's candidates does not fit in memory (see benchmarks/bucketed_memory.py); the
bucketed path (``ranking.bucketed.recommend_from_buckets``) also keeps the union and the features on disk.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from catboost import CatBoost

from hm_recsys.metrics import K
from hm_recsys.ranking.features import feature_context, features_for
from hm_recsys.ranking.ranker import score, top_k
from hm_recsys.submission import fill_popular
from hm_recsys.tables import Tables
from hm_recsys.weeks import TargetWeek


def recommend(
    model: CatBoost, features: pl.DataFrame, popular: list[int], n_customers: int, k: int = K
) -> pl.DataFrame:
    """customer_idx, article_idx, rank for every customer 0..n_customers-1: ranked candidates, then ``popular``."""
    return fill_popular(top_k(score(model, features), k), popular, n_customers, k)


def rank_in_chunks(
    model: CatBoost,
    tables: Tables,
    week: TargetWeek,
    candidates: pl.DataFrame,
    *,
    chunk_customers: int = 200_000,
    item_vectors: np.ndarray | None = None,
    user_vectors: np.ndarray | None = None,
    k: int = K,
) -> pl.DataFrame:
    """Top-``k`` of ``candidates`` (the union) per customer, features built and scored ``chunk_customers`` at a time.

    Same result as ``top_k(score(model, build_features(...)))``: every feature of a row depends only on its
    customer, its article and the history before the cutoff, never on the other customers in the frame.
    """
    if chunk_customers < 1:
        raise ValueError(f"chunk_customers must be >= 1, got {chunk_customers}")
    customers = candidates["customer_idx"].unique().sort()
    ctx = feature_context(tables, week, item_vectors, user_vectors)
    parts = []
    for start in range(0, customers.len(), chunk_customers):
        chunk = customers.slice(start, chunk_customers)
        rows = candidates.filter(pl.col("customer_idx").is_in(chunk.implode()))
        parts.append(top_k(score(model, features_for(ctx, rows)), k))
    if not parts:
        return pl.DataFrame(schema={"customer_idx": pl.Int32, "article_idx": pl.Int32, "rank": pl.Int16})
    return pl.concat(parts)
