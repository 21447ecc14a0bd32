"""One week's ranking rows end to end (sources -> union -> features -> labels), for benchmarks and tests.

The Dagster layer materialises the same steps as separate per-week assets; this is the same composition
in one call, so a backtest script can build a week without the asset graph.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from hm_recsys import weeks
from hm_recsys.candidates import run_sources, union_candidates
from hm_recsys.ranking.features import build_features
from hm_recsys.ranking.labels import attach_labels
from hm_recsys.tables import Tables
from hm_recsys.weeks import TargetWeek


def week_candidates(
    tables: Tables,
    week: TargetWeek,
    customers: pl.Series | None = None,
    source_params: dict[str, dict] | None = None,
    extra_sources: dict[str, pl.DataFrame] | None = None,
) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    """Every source's frame (plus ``extra_sources``, e.g. the two-tower top-100) and their union."""
    sources = run_sources(tables, week, customers, params=source_params)
    for name, frame in (extra_sources or {}).items():
        if name in sources:
            raise ValueError(f"extra source {name!r} clashes with a built-in source")
        sources[name] = frame if customers is None else frame.filter(pl.col("customer_idx").is_in(customers.implode()))
    return sources, union_candidates(sources)


def labelled_week(
    tables: Tables,
    week: TargetWeek,
    source_params: dict[str, dict] | None = None,
    item_vectors: np.ndarray | None = None,
    user_vectors: np.ndarray | None = None,
    extra_sources: dict[str, pl.DataFrame] | None = None,
) -> pl.DataFrame:
    """A training week's rows: its buyers' candidates and features as of its own cutoff, labelled by its purchases."""
    buyers = weeks.labels(tables.transactions, week)["customer_idx"].unique().sort()
    _, union = week_candidates(tables, week, buyers, source_params, extra_sources)
    return attach_labels(build_features(tables, week, union, item_vectors, user_vectors), tables, week)
