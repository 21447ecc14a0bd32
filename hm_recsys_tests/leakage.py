"""Shared leakage harness: anything computed for week W must not change when rows from W on change."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from hm_recsys.tables import Tables
from hm_recsys.weeks import TargetWeek


def perturb_future(tables: Tables, week: TargetWeek, seed: int = 0) -> Tables:
    """Drop every transaction on or after ``week.start`` and put random ones in their place."""
    tx = tables.transactions
    past = tx.filter(pl.col("t_dat") < week.start)
    n = max(1000, tx.height - past.height)
    rng = np.random.default_rng(seed)
    junk = pl.DataFrame(
        {
            "t_dat": [week.start + dt.timedelta(days=int(d)) for d in rng.integers(0, 21, n)],
            "customer_idx": rng.integers(0, tables.n_customers, n).astype(np.int32),
            "article_idx": rng.integers(0, tables.n_articles, n).astype(np.int32),
            "price": rng.uniform(0.001, 0.5, n).astype(np.float32),
            "sales_channel_id": rng.integers(1, 3, n).astype(np.int8),
        },
        schema=tx.schema,
    )
    return Tables(tables.articles, tables.customers, pl.concat([past, junk]).sort("t_dat", maintain_order=True))
