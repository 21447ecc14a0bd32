"""Candidate sources: the frame contract, customer restriction, no look-ahead, and what each source proposes."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from hm_recsys import weeks
from hm_recsys.candidates import (
    CANDIDATE_SCHEMA,
    SOURCES,
    als_candidates,
    bought_together_candidates,
    co_purchase_pairs,
    popular_by_age_candidates,
    popular_last_week_candidates,
    repurchase_candidates,
    run_sources,
    same_product_candidates,
)
from hm_recsys.candidates.popular import AGE_EDGES, customer_age_groups
from hm_recsys.tables import Tables
from hm_recsys.weeks import TargetWeek
from hm_recsys_tests.leakage import perturb_future
from hm_recsys_tests.ranking_toy_world import LAST_WEEK, toy_world

WEEK = LAST_WEEK
FAST = {"als": {"factors": 16, "iterations": 5}}


@pytest.fixture(scope="module")
def tables() -> Tables:
    return toy_world()


@pytest.fixture(scope="module")
def buyers(tables) -> pl.Series:
    return weeks.labels(tables.transactions, WEEK)["customer_idx"].unique().sort()


@pytest.fixture(scope="module")
def outputs(tables, buyers) -> dict[str, pl.DataFrame]:
    return run_sources(tables, WEEK, buyers, params=FAST)


def check_contract(frame: pl.DataFrame, name: str) -> None:
    assert frame.schema == pl.Schema(CANDIDATE_SCHEMA), name
    assert frame.height > 0, f"{name} proposed nothing"
    assert frame.null_count().sum_horizontal().item() == 0, name
    assert not frame.select("customer_idx", "article_idx").is_duplicated().any(), f"{name}: repeated article"
    per_customer = frame.sort("customer_idx", "rank").group_by("customer_idx", maintain_order=True).agg(
        "rank", "score", n=pl.len()
    )
    for row in per_customer.iter_rows(named=True):
        assert row["rank"] == list(range(row["n"])), f"{name}: ranks of customer {row['customer_idx']}"
        assert row["score"] == sorted(row["score"], reverse=True), f"{name}: score not falling with rank"


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_source_contract_and_restriction(outputs, buyers, name):
    frame = outputs[name]
    check_contract(frame, name)
    assert set(frame["customer_idx"].unique()) <= set(buyers), f"{name} answered for customers not asked"


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_source_ignores_the_target_week_and_later(tables, buyers, outputs, name):
    changed = perturb_future(tables, WEEK, seed=3)
    again = SOURCES[name](changed, WEEK, buyers, **FAST.get(name, {}))
    assert_frame_equal(again, outputs[name])


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_source_is_deterministic(tables, buyers, outputs, name):
    assert_frame_equal(SOURCES[name](tables, WEEK, buyers, **FAST.get(name, {})), outputs[name])


def test_restriction_keeps_each_customers_list(tables, buyers, outputs):
    some = buyers.head(7)
    for name, fn in SOURCES.items():
        sub = fn(tables, WEEK, some, **FAST.get(name, {}))
        expected = outputs[name].filter(pl.col("customer_idx").is_in(some.implode()))
        assert_frame_equal(sub, expected, check_row_order=False)


def test_popular_covers_every_customer_without_restriction(tables):
    frame = popular_last_week_candidates(tables, WEEK, top_n=10)
    assert frame["customer_idx"].n_unique() == tables.n_customers
    assert frame.group_by("customer_idx").len()["len"].unique().to_list() == [10]
    week_tx = weeks.history(tables.transactions, WEEK, days=7)
    counts = week_tx.group_by("article_idx").len().sort(["len", "article_idx"], descending=[True, False]).head(10)
    first = frame.filter(pl.col("customer_idx") == 0).sort("rank")
    assert first["article_idx"].to_list() == counts["article_idx"].to_list()
    assert first["score"].to_list() == counts["len"].cast(pl.Float32).to_list()


def test_repurchase_scores_recent_and_frequent_purchases_higher(tables):
    c = 5
    week = TargetWeek(dt.date(2020, 9, 16))
    rows = pl.DataFrame(
        {
            "t_dat": [dt.date(2020, 9, 15), dt.date(2020, 9, 1), dt.date(2020, 9, 1), dt.date(2020, 6, 3), dt.date(2020, 9, 16)],
            "customer_idx": [c] * 5,
            "article_idx": [10, 11, 11, 12, 13],
            "price": [0.01] * 5,
            "sales_channel_id": [2] * 5,
        }
    ).cast(tables.transactions.schema)
    mini = Tables(tables.articles, tables.customers, rows)
    got = repurchase_candidates(mini, week, half_life_days=30)
    # 13 is bought on the target week's first day: invisible. 10 (1 day ago) vs 11 (2 buys, 15 days ago):
    # 0.5**(1/30) = 0.977 < 2 * 0.5**(15/30) = 1.414, and 12 (105 days ago) is last.
    assert got["article_idx"].to_list() == [11, 10, 12]
    assert got["score"][0] == pytest.approx(2 * 0.5 ** 0.5, rel=1e-5)


def test_same_product_proposes_other_variants_only(tables, buyers, outputs):
    frame = outputs["same_product"]
    product = tables.articles.select("article_idx", "product_code")
    bought = weeks.history(tables.transactions, WEEK).select("customer_idx", "article_idx").unique()
    assert frame.join(bought, on=["customer_idx", "article_idx"], how="semi").height == 0
    bought_products = bought.join(product, on="article_idx").select("customer_idx", "product_code").unique()
    proposed = frame.join(product, on="article_idx")
    assert proposed.join(bought_products, on=["customer_idx", "product_code"], how="anti").height == 0


def test_age_groups_get_their_own_best_sellers(tables, buyers, outputs):
    frame = outputs["age_popular"]
    groups = customer_age_groups(tables)
    lists = (
        frame.join(groups, on="customer_idx")
        .sort("customer_idx", "rank")
        .group_by("customer_idx", "age_group", maintain_order=True)
        .agg("article_idx")
    )
    # every customer of a group gets the same list, and groups differ
    per_group = lists.group_by("age_group").agg(pl.col("article_idx").unique().len().alias("n_lists"))
    assert per_group["n_lists"].to_list() == [1] * per_group.height
    as_text = lists.select(pl.col("article_idx").cast(pl.List(pl.String)).list.join(","))
    assert as_text["article_idx"].n_unique() > 1
    assert groups.filter(pl.col("age_group") == -1).height > 0  # null ages get a group of their own
    assert groups["age_group"].max() <= len(AGE_EDGES) - 1


def test_popular_by_age_counts_the_groups_sales(tables):
    frame = popular_by_age_candidates(tables, WEEK, top_n=3)
    groups = customer_age_groups(tables)
    tx = weeks.history(tables.transactions, WEEK, days=7).join(groups, on="customer_idx")
    young = groups.filter(pl.col("age_group") == 1)["customer_idx"][0]
    expected = (
        tx.filter(pl.col("age_group") == 1)
        .group_by("article_idx")
        .len()
        .sort(["len", "article_idx"], descending=[True, False])
        .head(3)["article_idx"]
        .to_list()
    )
    assert frame.filter(pl.col("customer_idx") == young).sort("rank")["article_idx"].to_list() == expected


def test_bought_together_follows_shared_baskets(tables):
    week = TargetWeek(dt.date(2020, 9, 16))
    d = dt.date(2020, 9, 10)
    # customers 1 and 2 both bought 20 with 21; customer 3 bought 20 with 22; customer 4 bought 20 last week
    rows = pl.DataFrame(
        {
            "t_dat": [d, d, d, d, d, d, dt.date(2020, 9, 14)],
            "customer_idx": [1, 1, 2, 2, 3, 3, 4],
            "article_idx": [20, 21, 20, 21, 20, 22, 20],
            "price": [0.01] * 7,
            "sales_channel_id": [1] * 7,
        }
    ).cast(tables.transactions.schema)
    mini = Tables(tables.articles, tables.customers, rows)
    pairs = co_purchase_pairs(mini, week, basket="day").filter(pl.col("article_idx") == 20)
    assert pairs["partner_idx"].to_list() == [21, 22]
    assert pairs["n_baskets"].to_list() == [2, 1]
    got = bought_together_candidates(mini, week, pl.Series([4], dtype=pl.Int32), basket="day")
    assert got["article_idx"].to_list() == [21, 22]
    assert got["score"][0] > got["score"][1] > 0


def test_als_is_deterministic_across_thread_counts(tables, buyers):
    one = als_candidates(tables, WEEK, buyers, factors=16, iterations=5, num_threads=1, seed=7)
    two = als_candidates(tables, WEEK, buyers, factors=16, iterations=5, num_threads=2, seed=7)
    assert_frame_equal(one, two)
    other_seed = als_candidates(tables, WEEK, buyers, factors=16, iterations=5, num_threads=2, seed=8)
    assert not one.equals(other_seed)


def test_als_skips_customers_without_recent_history(tables):
    recent = weeks.history(tables.transactions, WEEK, days=30)["customer_idx"].unique()
    frame = als_candidates(tables, WEEK, days=30, factors=8, iterations=3)
    assert set(frame["customer_idx"].unique()) == set(recent)


def test_bad_arguments_fail_clearly(tables):
    with pytest.raises(ValueError, match="outside the customers table"):
        popular_last_week_candidates(tables, WEEK, pl.Series([tables.n_customers + 5]))
    with pytest.raises(ValueError, match="basket must be one of"):
        co_purchase_pairs(tables, WEEK, basket="month")
    with pytest.raises(ValueError, match="unknown source"):
        run_sources(tables, WEEK, params={"nope": {}})
    with pytest.raises(ValueError, match="half_life_days"):
        same_product_candidates(tables, WEEK, half_life_days=0)
