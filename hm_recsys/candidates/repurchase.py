"""Sources from the customer's own past purchases: the article again, and its other colour variants.

Repurchase is the strongest single signal in H&M data (people rebuy basics, sizes, gifts); the same
product in another colour is the next one (an article is one colour variant of a product_code).
"""

from __future__ import annotations

import polars as pl

from hm_recsys.candidates.contract import decay, rank_within_customer, restrict
from hm_recsys.tables import Tables
from hm_recsys.weeks import TargetWeek, past


def repurchase_candidates(
    tables: Tables,
    week: TargetWeek,
    customers: pl.Series | None = None,
    *,
    days: int | None = None,
    half_life_days: float = 30.0,
    top_n: int = 30,
) -> pl.DataFrame:
    """Articles the customer bought before, scored by the time-decayed number of purchases.

    ``days`` limits the look-back (None = all history); ``half_life_days`` sets how fast old purchases fade.
    """
    scored = (
        restrict(past(tables, week, days), customers)
        .group_by("customer_idx", "article_idx")
        .agg(score=decay(half_life_days).sum())
    )
    return rank_within_customer(scored, top_n)


def same_product_candidates(
    tables: Tables,
    week: TargetWeek,
    customers: pl.Series | None = None,
    *,
    days: int | None = None,
    half_life_days: float = 30.0,
    popularity_days: int = 7,
    top_n: int = 30,
) -> pl.DataFrame:
    """Other colour variants (same product_code) of the products a customer bought, not the bought articles.

    Score = time-decayed purchases of the product x log(2 + the variant's sales in the last
    ``popularity_days``), so that among the variants of one product the selling ones come first.
    """
    hist = restrict(past(tables, week, days), customers)
    product = tables.articles.lazy().select(pl.col("article_idx").cast(pl.Int32), "product_code")
    variant_sales = (
        past(tables, week, popularity_days).group_by("article_idx").agg(sales=pl.len().cast(pl.Float64))
    )
    bought = hist.select("customer_idx", "article_idx").unique()
    product_weight = (
        hist.join(product, on="article_idx", how="inner")
        .group_by("customer_idx", "product_code")
        .agg(weight=decay(half_life_days).sum())
    )
    scored = (
        product_weight.join(product, on="product_code", how="inner")
        .join(bought, on=["customer_idx", "article_idx"], how="anti")
        .join(variant_sales, on="article_idx", how="left")
        .select(
            "customer_idx",
            "article_idx",
            score=pl.col("weight") * (pl.col("sales").fill_null(0.0) + 2.0).log(),
        )
    )
    return rank_within_customer(scored, top_n)
