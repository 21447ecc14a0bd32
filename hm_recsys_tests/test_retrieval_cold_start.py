"""Cold-start share: counted over the target week's purchases of articles never sold before the cutoff."""

from __future__ import annotations

import datetime as dt

import polars as pl

from hm_recsys import schema
from hm_recsys.retrieval import cold_start
from hm_recsys.tables import Tables
from hm_recsys.weeks import TargetWeek

WEEK = TargetWeek(dt.date(2020, 9, 16))


def _tables() -> Tables:
    d = dt.date
    tx = pl.DataFrame(
        {
            "t_dat": [d(2020, 9, 1), d(2020, 9, 15), d(2020, 9, 16), d(2020, 9, 17), d(2020, 9, 17), d(2020, 9, 18), d(2020, 9, 23)],
            "customer_idx": [0, 1, 0, 1, 1, 2, 2],
            "article_idx": [0, 1, 2, 2, 0, 3, 4],  # 2 and 3 are new in the week; 4 sells only after it
            "price": [0.01] * 7,
            "sales_channel_id": [2] * 7,
        }
    ).cast(schema.TRANSACTIONS_TABLE_SCHEMA)
    articles = pl.DataFrame({"article_idx": pl.Series(range(5), dtype=pl.Int32)})
    customers = pl.DataFrame({"customer_idx": pl.Series(range(3), dtype=pl.Int32)})
    return Tables(articles, customers, tx)


def test_cold_pairs_and_share():
    tables = _tables()
    pairs = cold_start.cold_pairs(tables, WEEK).sort("customer_idx")
    assert pairs.rows() == [(0, 2), (1, 2), (2, 3)]
    cands = pl.DataFrame(
        {"customer_idx": [0, 0, 1, 2], "article_idx": [2, 0, 0, 3], "rank": [0, 1, 0, 150]},
        schema={"customer_idx": pl.Int32, "article_idx": pl.Int32, "rank": pl.Int16},
    )
    got = cold_start.cold_start_recall(cands, tables, WEEK, k=100)
    assert got == {"k": 100, "n_cold_pairs": 3, "n_cold_articles": 2, "n_found": 1, "share": 1 / 3}
    assert cold_start.cold_start_recall(cands, tables, WEEK, k=200)["n_found"] == 2


def test_no_cold_purchases_gives_none():
    tables = _tables()
    later = TargetWeek(dt.date(2020, 9, 23))  # article 4 sells then, but it was never sold before either
    assert cold_start.cold_start_recall(pl.DataFrame(schema={"customer_idx": pl.Int32, "article_idx": pl.Int32, "rank": pl.Int16}),
                                        tables, later)["n_cold_pairs"] == 1
    empty = TargetWeek(dt.date(2020, 9, 30))
    assert cold_start.cold_start_recall(pl.DataFrame(schema={"customer_idx": pl.Int32, "article_idx": pl.Int32, "rank": pl.Int16}),
                                        tables, empty)["share"] is None
