"""MAP@12 exactly as Kaggle scored the H&M competition, and recall of candidate sets.

Both take long frames keyed by integer ids: recommendations ``(customer_idx, article_idx, rank)``
(rank 0 = best) and the target week's purchases ``(customer_idx, article_idx)``.
"""

from __future__ import annotations

import polars as pl

K = 12


def relevant_sets(purchases: pl.DataFrame) -> pl.DataFrame:
    """Distinct articles each buyer bought in the week: the relevant set (repeat units count once)."""
    return purchases.select("customer_idx", "article_idx").unique()


def average_precision_at_k(predicted: list, actual: set | list, k: int = K) -> float:
    """Reference AP@k for one customer (the Kaggle ``apk``): used by tests and independent scoring."""
    actual = set(actual)
    if not actual:
        return 0.0
    seen: set = set()
    hits = 0
    score = 0.0
    for i, p in enumerate(predicted[:k]):
        if p in actual and p not in seen:
            hits += 1
            score += hits / (i + 1.0)
        seen.add(p)
    return score / min(len(actual), k)


def map_at_k(recommendations: pl.DataFrame, purchases: pl.DataFrame, k: int = K) -> float:
    """Mean AP@k over the customers who bought in the week; buyers with no recommendation score 0.

    Duplicate recommendations of one article count once, at their best rank, as in Kaggle's apk.
    """
    truth = relevant_sets(purchases)
    buyers = truth.group_by("customer_idx").agg(pl.len().alias("n_relevant"))
    if buyers.height == 0:
        raise ValueError("no purchases in the target week: MAP@12 is undefined")
    recs = (
        recommendations.filter(pl.col("rank") < k)
        .group_by("customer_idx", "article_idx")
        .agg(pl.col("rank").min())
    )
    hits = (
        recs.join(truth, on=["customer_idx", "article_idx"], how="inner")
        .sort("customer_idx", "rank")
        .with_columns(hit_no=pl.col("rank").cum_count().over("customer_idx"))
        .with_columns(precision=pl.col("hit_no") / (pl.col("rank") + 1))
        .group_by("customer_idx", maintain_order=True)
        .agg(pl.col("precision").sum())
    )
    per_buyer = buyers.join(hits, on="customer_idx", how="left").with_columns(
        ap=pl.col("precision").fill_null(0.0) / pl.min_horizontal(pl.col("n_relevant"), pl.lit(k))
    )
    # summed in customer order: the same data gives the same bits, whatever order the group-bys chose
    return float(per_buyer.sort("customer_idx")["ap"].sum() / buyers.height)


def recall(candidates: pl.DataFrame, purchases: pl.DataFrame) -> float:
    """Share of the week's distinct buyer-article pairs that the candidate set contains."""
    truth = relevant_sets(purchases)
    if truth.height == 0:
        raise ValueError("no purchases in the target week: recall is undefined")
    # Only the buyers' candidates: at full scale the two-tower set alone is 137M rows, and a distinct or a
    # hash join over all of them took more than the machine's 24 GiB.
    mine = candidates.join(truth.select("customer_idx").unique(), on="customer_idx", how="semi")
    found = truth.join(mine.select("customer_idx", "article_idx").unique(), on=["customer_idx", "article_idx"], how="semi")
    return found.height / truth.height


def recall_at_k(candidates: pl.DataFrame, purchases: pl.DataFrame, k: int) -> float:
    """Recall of each customer's top-``k`` candidates (by ``rank``, 0 = best)."""
    return recall(candidates.filter(pl.col("rank") < k), purchases)
