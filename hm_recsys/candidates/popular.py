"""Popularity sources: last week's best sellers for everyone, and best sellers within the customer's age group.

Fashion demand moves week to week; last week's top sellers are the single largest recall source in the
H&M data (hm-data-facts.md), and age is the customer attribute that shifts taste most.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from hm_recsys.candidates.contract import (
    broadcast_ranking,
    empty_candidates,
    target_customers,
)
from hm_recsys.tables import Tables
from hm_recsys.weeks import TargetWeek, past

# Lower edges of the age groups (years); ages below the first edge join the first group, null ages form group -1.
AGE_EDGES: tuple[int, ...] = (16, 20, 23, 26, 30, 35, 40, 45, 50, 55, 60, 65, 70)


def _top_articles(tx: pl.LazyFrame, top_n: int, by: list[str]) -> pl.DataFrame:
    """Best sellers by units sold (ties: smaller article_idx), ranked 0.. within each ``by`` group."""
    counts = tx.group_by([*by, "article_idx"]).agg(score=pl.len().cast(pl.Float32))
    return (
        counts.sort([*by, "score", "article_idx"], descending=[False] * len(by) + [True, False])
        .with_columns(rank=(pl.int_range(pl.len()).over(by) if by else pl.int_range(pl.len())).cast(pl.Int16))
        .filter(pl.col("rank") < top_n)
        .collect()
    )


def best_sellers(tables: Tables, week: TargetWeek, *, days: int = 7, top_n: int = 12) -> pl.DataFrame:
    """The ``top_n`` best sellers of the last ``days`` days: article_idx, score (units), rank (0 = best)."""
    return _top_articles(past(tables, week, days), top_n, by=[])


def popular_last_week_candidates(
    tables: Tables,
    week: TargetWeek,
    customers: pl.Series | None = None,
    *,
    days: int = 7,
    top_n: int = 60,
) -> pl.DataFrame:
    """The same ``top_n`` best sellers of the last ``days`` days for every customer (score = units sold)."""
    ranking = best_sellers(tables, week, days=days, top_n=top_n)
    if ranking.height == 0:
        return empty_candidates()
    return broadcast_ranking(ranking, target_customers(tables, customers))


def age_group(age: pl.Expr, edges: tuple[int, ...] = AGE_EDGES) -> pl.Expr:
    """Index of the age group (0 = below ``edges[1]``), -1 for a missing age."""
    inner = np.asarray(edges[1:], dtype=np.float64)
    groups = pl.lit(0, dtype=pl.Int16)
    for edge in inner:
        groups = groups + (age >= float(edge)).cast(pl.Int16)
    return pl.when(age.is_null() | age.is_nan()).then(pl.lit(-1, dtype=pl.Int16)).otherwise(groups)


def customer_age_groups(tables: Tables, edges: tuple[int, ...] = AGE_EDGES) -> pl.DataFrame:
    """customer_idx -> age_group for every customer."""
    return tables.customers.select(
        pl.col("customer_idx").cast(pl.Int32), age_group=age_group(pl.col("age").cast(pl.Float64), edges)
    )


def popular_by_age_candidates(
    tables: Tables,
    week: TargetWeek,
    customers: pl.Series | None = None,
    *,
    days: int = 7,
    top_n: int = 12,
    edges: tuple[int, ...] = AGE_EDGES,
) -> pl.DataFrame:
    """Each age group's ``top_n`` best sellers of the last ``days`` days, given to the group's customers.

    Customers with no age share the list of the buyers with no age.
    """
    groups = customer_age_groups(tables, edges)
    tx = past(tables, week, days).join(groups.lazy(), on="customer_idx", how="inner")
    ranking = _top_articles(tx, top_n, by=["age_group"])
    if ranking.height == 0:
        return empty_candidates()
    wanted = target_customers(tables, customers).join(groups, on="customer_idx", how="left")
    return broadcast_ranking(ranking, wanted, by=["age_group"])

