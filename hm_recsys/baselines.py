"""Heuristic recommenders: the bars any learned model must clear.

Each returns a long frame ``(customer_idx, article_idx, rank)``; ``submission.fill_popular`` tops
every customer up to 12. All read history through ``weeks.history`` only.
"""

from __future__ import annotations

import polars as pl

from hm_recsys.metrics import K
from hm_recsys.tables import Tables
from hm_recsys.weeks import TargetWeek, history


def popular_articles(tables: Tables, week: TargetWeek, days: int | None = 7, n: int = K) -> list[int]:
    """Most bought articles (distinct buyers) in the last ``days`` before the cutoff (all history if None).

    Ties break on article_idx so the list is deterministic. Falls back to all history when the
    window is empty (e.g. a gap in the data) so a fill list always exists.
    """
    past = history(tables.transactions, week, days=days)
    if past.height == 0 and days is not None:
        past = history(tables.transactions, week)
    top = (
        past.group_by("article_idx")
        .agg(pl.col("customer_idx").n_unique().alias("buyers"))
        .sort(["buyers", "article_idx"], descending=[True, False])
        .head(n)
    )
    return top["article_idx"].to_list()


def same_list_for_everyone(articles: list[int], n_customers: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "customer_idx": pl.arange(0, n_customers, eager=True).cast(pl.Int32).repeat_by(len(articles)).explode(),
            "article_idx": pl.Series(articles * n_customers, dtype=pl.Int32),
            "rank": pl.Series(list(range(len(articles))) * n_customers, dtype=pl.Int16),
        }
    )


def popular_all_time(tables: Tables, week: TargetWeek) -> pl.DataFrame:
    """The original case study's baseline: the same all-time best sellers for everyone."""
    return same_list_for_everyone(popular_articles(tables, week, days=None), tables.n_customers)


def popular_last_week(tables: Tables, week: TargetWeek) -> pl.DataFrame:
    return same_list_for_everyone(popular_articles(tables, week, days=7), tables.n_customers)


def repurchase_popular(
    tables: Tables, week: TargetWeek, decay_days: float = 14.0, variant_weight: float = 0.5, variant_days: int = 28
) -> pl.DataFrame:
    """Time-decayed repurchase, then other colour variants of purchased products, then (by the fill) last-week popular.

    A purchase ``d`` days before the cutoff weighs ``exp(-d / decay_days)``; a variant inherits its
    product's weight times ``variant_weight``, limited to variants that sold in the last
    ``variant_days`` (dead stock is not worth a slot).
    """
    past = history(tables.transactions, week).with_columns(
        weight=(-((pl.lit(week.cutoff) - pl.col("t_dat")).dt.total_days().cast(pl.Float64)) / decay_days).exp()
    )
    own = past.group_by("customer_idx", "article_idx").agg(score=pl.col("weight").sum())
    product = tables.articles.select("article_idx", "product_code")
    alive = history(tables.transactions, week, days=variant_days).select("article_idx").unique().join(product, on="article_idx")
    variants = (
        own.join(product, on="article_idx")
        .group_by("customer_idx", "product_code")
        .agg(product_score=pl.col("score").sum())
        .join(alive, on="product_code")
        .join(own.select("customer_idx", "article_idx"), on=["customer_idx", "article_idx"], how="anti")
        .select("customer_idx", "article_idx", score=pl.col("product_score") * variant_weight)
    )
    return (
        pl.concat([own, variants])
        .sort(["customer_idx", "score", "article_idx"], descending=[False, True, False])
        .with_columns(rank=pl.int_range(pl.len()).over("customer_idx").cast(pl.Int16))
        .filter(pl.col("rank") < K)
        .select("customer_idx", "article_idx", "rank")
    )


BASELINES = {
    "popular_all_time": popular_all_time,
    "popular_last_week": popular_last_week,
    "repurchase_popular": repurchase_popular,
}
