"""Candidate sources (recall stage): cheap, diverse proposals that the ranker orders.

Every source has the signature ``(tables, week, customers=None, **params) -> candidate frame`` (see
``contract.CANDIDATE_SCHEMA``) and reads transactions only through ``weeks.history``.
"""

from __future__ import annotations

from typing import Callable

import polars as pl

from hm_recsys.candidates.contract import CANDIDATE_SCHEMA, validate_candidates
from hm_recsys.candidates.copurchase import bought_together_candidates, co_purchase_pairs
from hm_recsys.candidates.mf import als_candidates, bpr_candidates
from hm_recsys.candidates.popular import popular_by_age_candidates, popular_last_week_candidates
from hm_recsys.candidates.repurchase import repurchase_candidates, same_product_candidates
from hm_recsys.candidates.union import union_candidates, write_union_buckets
from hm_recsys.tables import Tables
from hm_recsys.weeks import TargetWeek

Source = Callable[..., pl.DataFrame]

# Name -> function; the name prefixes the source's columns in the union. The two-tower source
# ("two_tower") comes from hm_recsys.retrieval and joins the union as a frame.
SOURCES: dict[str, Source] = {
    "repurchase": repurchase_candidates,
    "same_product": same_product_candidates,
    "popular": popular_last_week_candidates,
    "age_popular": popular_by_age_candidates,
    "bought_together": bought_together_candidates,
    "als": als_candidates,
    "bpr": bpr_candidates,
}


def run_sources(
    tables: Tables,
    week: TargetWeek,
    customers: pl.Series | None = None,
    params: dict[str, dict] | None = None,
    names: list[str] | None = None,
) -> dict[str, pl.DataFrame]:
    """Run the named sources (default all of ``SOURCES``) with their ``params`` (name -> keyword args)."""
    params = params or {}
    unknown = set(params) - set(SOURCES)
    if unknown:
        raise ValueError(f"run_sources: unknown source(s) in params: {sorted(unknown)} (known: {sorted(SOURCES)})")
    return {name: SOURCES[name](tables, week, customers, **params.get(name, {})) for name in names or SOURCES}


__all__ = [
    "CANDIDATE_SCHEMA",
    "SOURCES",
    "als_candidates",
    "bought_together_candidates",
    "bpr_candidates",
    "co_purchase_pairs",
    "popular_by_age_candidates",
    "popular_last_week_candidates",
    "repurchase_candidates",
    "run_sources",
    "same_product_candidates",
    "union_candidates",
    "validate_candidates",
    "write_union_buckets",
]
