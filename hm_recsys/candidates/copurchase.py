"""Bought-together: articles that shared a basket with the customer's recent purchases.

Item-to-item co-purchase counts come from recent baskets (one customer, one day or one week); a
customer's recent purchases then vote for their most frequent partners, weighted by recency.
"""

from __future__ import annotations

import polars as pl

from hm_recsys.candidates.contract import decay, rank_within_customer, restrict
from hm_recsys.tables import Tables
from hm_recsys.weeks import TargetWeek, past

BASKETS = ("day", "week")


def co_purchase_pairs(
    tables: Tables,
    week: TargetWeek,
    *,
    pair_days: int = 56,
    basket: str = "week",
    top_pairs: int = 12,
) -> pl.DataFrame:
    """For each article, its ``top_pairs`` most frequent basket partners in the last ``pair_days`` days.

    Returns article_idx, partner_idx, n_baskets (baskets holding both) and confidence = n_baskets /
    baskets holding the article.
    """
    if basket not in BASKETS:
        raise ValueError(f"basket must be one of {BASKETS}, got {basket!r}")
    tx = past(tables, week, pair_days)
    key = pl.col("days_ago") if basket == "day" else (pl.col("days_ago") - 1) // 7
    items = tx.select("customer_idx", "article_idx", basket_key=key).unique()
    support = items.group_by("article_idx").agg(n_article=pl.len())
    pairs = (
        items.join(items.rename({"article_idx": "partner_idx"}), on=["customer_idx", "basket_key"], how="inner")
        .filter(pl.col("article_idx") != pl.col("partner_idx"))
        .group_by("article_idx", "partner_idx")
        .agg(n_baskets=pl.len())
        .join(support, on="article_idx", how="inner")
        .with_columns(confidence=(pl.col("n_baskets") / pl.col("n_article")).cast(pl.Float32))
        .sort(["article_idx", "n_baskets", "partner_idx"], descending=[False, True, False])
        .filter(pl.int_range(pl.len()).over("article_idx") < top_pairs)
        .select("article_idx", "partner_idx", "n_baskets", "confidence")
    )
    return pairs.collect()


def bought_together_candidates(
    tables: Tables,
    week: TargetWeek,
    customers: pl.Series | None = None,
    *,
    pair_days: int = 56,
    basket: str = "week",
    top_pairs: int = 12,
    recent_days: int = 56,
    half_life_days: float = 14.0,
    top_n: int = 20,
) -> pl.DataFrame:
    """Partners of the articles the customer bought in the last ``recent_days`` days.

    Score = sum over the customer's recent articles of recency weight x co-purchase confidence.
    """
    pairs = co_purchase_pairs(tables, week, pair_days=pair_days, basket=basket, top_pairs=top_pairs)
    seeds = (
        restrict(past(tables, week, recent_days), customers)
        .group_by("customer_idx", "article_idx")
        .agg(weight=decay(half_life_days).sum())
    )
    scored = (
        seeds.join(pairs.lazy(), on="article_idx", how="inner")
        .group_by("customer_idx", "partner_idx")
        .agg(score=(pl.col("weight") * pl.col("confidence")).sum())
        .rename({"partner_idx": "article_idx"})
    )
    return rank_within_customer(scored, top_n)
