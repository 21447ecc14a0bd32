"""A small typed H&M-like world for the candidate and ranking tests (no dependency on the generator).

Enough structure for the signals the sources and the ranker use: colour variants of products,
article launches and short sales lives, customer taste by product type and age, repurchases.
"""

from __future__ import annotations

import datetime as dt
import functools

import numpy as np
import polars as pl

from hm_recsys import schema
from hm_recsys.tables import Tables
from hm_recsys.weeks import TargetWeek

FIRST_DAY = dt.date(2020, 6, 3)  # a Wednesday
N_DAYS = 16 * 7                   # 16 full weeks, last day Tuesday 2020-09-22
LAST_WEEK = TargetWeek(FIRST_DAY + dt.timedelta(days=N_DAYS - 7))


def _articles(rng: np.random.Generator, n_products: int) -> pl.DataFrame:
    rows = []
    for p in range(n_products):
        ptype = int(rng.integers(0, 6))
        for v in range(int(rng.integers(1, 5))):
            colour = int(rng.integers(1, 9))
            rows.append(
                {
                    "article_id": f"{(100000 + p) * 1000 + v:010d}",
                    "product_code": 100000 + p,
                    "prod_name": f"prod {p}",
                    "product_type_no": 250 + ptype,
                    "product_type_name": f"type {ptype}",
                    "product_group_name": "Garment Upper body" if ptype < 3 else "Garment Lower body",
                    "graphical_appearance_no": 1010016 + ptype % 2,
                    "graphical_appearance_name": "Solid" if ptype % 2 == 0 else "Stripe",
                    "colour_group_code": colour,
                    "colour_group_name": f"colour {colour}",
                    "perceived_colour_value_id": colour % 4,
                    "perceived_colour_value_name": f"value {colour % 4}",
                    "perceived_colour_master_id": colour % 5,
                    "perceived_colour_master_name": f"master {colour % 5}",
                    "department_no": 1000 + ptype * 10,
                    "department_name": f"dept {ptype}",
                    "index_code": "AB"[ptype % 2],
                    "index_name": ["Ladieswear", "Divided"][ptype % 2],
                    "index_group_no": [1, 26][ptype % 2],
                    "index_group_name": ["Ladieswear", "Divided"][ptype % 2],
                    "section_no": 10 + ptype,
                    "section_name": f"section {ptype}",
                    "garment_group_no": 1002 + ptype,
                    "garment_group_name": f"garment {ptype}",
                    "detail_desc": None if p % 17 == 0 else f"a garment of type {ptype}",
                }
            )
    frame = pl.DataFrame(rows, schema=schema.ARTICLE_COLUMNS)
    return frame.with_row_index("article_idx").with_columns(pl.col("article_idx").cast(pl.Int32))


def _customers(rng: np.random.Generator, n: int) -> pl.DataFrame:
    age = np.where(rng.random(n) < 0.5, rng.normal(24, 4, n), rng.normal(50, 8, n)).clip(16, 90).round()
    age_col = pl.Series("age", age, dtype=pl.Float32).scatter(np.flatnonzero(rng.random(n) < 0.03), None)
    frame = pl.DataFrame(
        {
            "customer_id": [f"{i:064x}" for i in range(n)],
            "FN": pl.Series(np.where(rng.random(n) < 0.35, 1.0, np.nan), dtype=pl.Float32).fill_nan(None),
            "Active": pl.Series(np.where(rng.random(n) < 0.34, 1.0, np.nan), dtype=pl.Float32).fill_nan(None),
            "club_member_status": rng.choice(["ACTIVE", "PRE-CREATE"], n, p=[0.93, 0.07]).tolist(),
            "fashion_news_frequency": rng.choice(["NONE", "Regularly"], n, p=[0.65, 0.35]).tolist(),
            "age": age_col,
            "postal_code": [f"{i % 37:064x}" for i in range(n)],
        },
        schema=schema.CUSTOMER_COLUMNS,
    )
    return frame.with_row_index("customer_idx").with_columns(pl.col("customer_idx").cast(pl.Int32))


def toy_tables(seed: int = 0, n_customers: int = 400, n_products: int = 50) -> Tables:
    rng = np.random.default_rng(seed)
    articles = _articles(rng, n_products)
    customers = _customers(rng, n_customers)
    n_art = articles.height
    ptype = articles["product_type_no"].to_numpy() - 250
    product = articles["product_code"].to_numpy()
    launch = rng.integers(-60, N_DAYS - 7, n_art)
    life = rng.integers(20, 60, n_art)
    base_pop = rng.lognormal(0, 1, n_art)
    young_article = rng.random(n_art) < 0.5
    ages = customers["age"].fill_null(36).to_numpy()
    price = rng.uniform(0.005, 0.06, n_art)

    rows = []
    for c in range(n_customers):
        taste = np.full(6, 0.3)
        taste[rng.choice(6, 2, replace=False)] = 3.0
        age_fit = np.where(young_article == (ages[c] < 35), 2.0, 0.5)
        n_sessions = rng.poisson(rng.gamma(1.5, 3.0))
        owned: list[int] = []
        for day in np.sort(rng.integers(0, N_DAYS, n_sessions)):
            alive = np.exp(-np.clip(day - launch, 0, None) / life) * (launch <= day)
            weights = base_pop * alive * taste[ptype] * age_fit
            channel = 2 if rng.random() < 0.7 else 1
            for _ in range(int(rng.integers(1, 4))):
                u = rng.random()
                if owned and u < 0.25:
                    art = owned[-1 - int(rng.integers(0, min(len(owned), 4)))]
                elif owned and u < 0.4:
                    variants = np.flatnonzero(product == product[owned[-1]])
                    art = int(rng.choice(variants))
                else:
                    art = int(rng.choice(n_art, p=weights / weights.sum()))
                owned.append(art)
                rows.append((FIRST_DAY + dt.timedelta(days=int(day)), c, art, price[art], channel))
    tx = pl.DataFrame(
        rows, schema=["t_dat", "customer_idx", "article_idx", "price", "sales_channel_id"], orient="row"
    ).cast(schema.TRANSACTIONS_TABLE_SCHEMA).sort("t_dat", "customer_idx", "article_idx")
    return Tables(articles=articles, customers=customers, transactions=tx)



@functools.cache
def toy_world() -> Tables:
    """The default toy world, built once per test session."""
    return toy_tables()


def labelled_week(tables: Tables, week: TargetWeek, item_vectors: np.ndarray | None = None) -> pl.DataFrame:
    """One training week as the pipeline builds it, with a small ALS to keep tests fast."""
    from hm_recsys.ranking.pipeline import labelled_week as build

    return build(tables, week, {"als": {"factors": 16, "iterations": 5}}, item_vectors)
