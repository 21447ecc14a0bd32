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
    """Last week's best sellers, the same for everyone."""
    return same_list_for_everyone(popular_articles(tables, week, days=7), tables.n_customers)


def repurchase_popular(tables: Tables, week: TargetWeek) -> pl.DataFrame:
    """Time-decayed repurchase, then other colour variants of purchased products, then (by the fill) last-week popular.

    The two personal lists are the ranker's repurchase and same-product candidate sources, so the
    baseline and the ranker see the same signals and differ only in how they order them.
    """
    from hm_recsys.candidates import repurchase_candidates, same_product_candidates

    own = repurchase_candidates(tables, week, top_n=K).with_columns(priority=pl.lit(0))
    variants = same_product_candidates(tables, week, top_n=K).with_columns(priority=pl.lit(1))
    return (
        pl.concat([own, variants])
        .sort("customer_idx", "priority", "rank")
        .unique(["customer_idx", "article_idx"], keep="first", maintain_order=True)
        .with_columns(rank=pl.int_range(pl.len()).over("customer_idx").cast(pl.Int16))
        .filter(pl.col("rank") < K)
        .select("customer_idx", "article_idx", "rank")
    )


BASELINES = {
    "popular_all_time": popular_all_time,
    "popular_last_week": popular_last_week,
    "repurchase_popular": repurchase_popular,
}
