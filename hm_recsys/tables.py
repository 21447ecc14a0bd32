"""The typed tables as one in-memory bundle, the unit every pure stage function takes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from hm_recsys import schema


@dataclass(frozen=True)
class Tables:
    """articles / customers keyed by ``article_idx`` / ``customer_idx`` (0..n-1, dense, row i has idx i);
    transactions with those keys (see ``schema.TRANSACTIONS_TABLE_SCHEMA``), sorted by ``t_dat``."""

    articles: pl.DataFrame
    customers: pl.DataFrame
    transactions: pl.DataFrame

    @property
    def n_articles(self) -> int:
        return self.articles.height

    @property
    def n_customers(self) -> int:
        return self.customers.height


def load_tables(tables_dir: str | Path) -> Tables:
    tables_dir = Path(tables_dir)
    return Tables(
        articles=pl.read_parquet(tables_dir / schema.ARTICLES_TABLE),
        customers=pl.read_parquet(tables_dir / schema.CUSTOMERS_TABLE),
        transactions=pl.read_parquet(tables_dir / schema.TRANSACTIONS_TABLE),
    )
