"""Ranker features and training rows: correct values, no information from the target week or later."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from hm_recsys import weeks
from hm_recsys.candidates import run_sources, union_candidates
from hm_recsys.ranking import attach_labels, build_features, feature_columns, training_set
from hm_recsys_tests.leakage import perturb_future
from hm_recsys_tests.ranking_toy_world import LAST_WEEK, labelled_week, toy_world

WEEK = LAST_WEEK
KEYS = ["customer_idx", "article_idx"]


@pytest.fixture(scope="module")
def tables():
    return toy_world()


@pytest.fixture(scope="module")
def vectors(tables):
    rng = np.random.default_rng(0)
    return rng.normal(size=(tables.n_articles, 12)), rng.normal(size=(tables.n_customers, 12))


@pytest.fixture(scope="module")
def candidates(tables):
    buyers = weeks.labels(tables.transactions, WEEK)["customer_idx"].unique()
    return union_candidates(run_sources(tables, WEEK, buyers, params={"als": {"factors": 8, "iterations": 3}}))


@pytest.fixture(scope="module")
def features(tables, candidates, vectors):
    return build_features(tables, WEEK, candidates, *vectors)


def test_features_keep_the_candidates_and_add_features(candidates, features):
    assert features.height == candidates.height
    assert_frame_equal(features.select(candidates.columns), candidates.sort(KEYS))
    names = feature_columns(features)
    assert "week_start" not in names and "customer_idx" not in names
    for expected in ("u_n_1w", "u_n_12w", "u_price_mean", "u_online_share", "u_days_since_last", "a_n_4w",
                     "a_trend_1w", "a_days_since_first", "a_price", "ca_n", "cp_days_since", "c_type_n",
                     "c_colour_n", "x_price_ratio", "ag_share", "season_week", "emb_pc_0", "emb_recent_sim",
                     "emb_two_tower_dot", "repurchase_rank", "n_sources"):
        assert expected in names
    assert features["week_start"].unique().to_list() == [WEEK.start]


def test_features_ignore_the_target_week_and_later(tables, candidates, vectors, features):
    changed = perturb_future(tables, WEEK, seed=5)
    assert_frame_equal(build_features(changed, WEEK, candidates, *vectors), features)


def test_training_rows_ignore_the_target_week_and_later(tables):
    changed = perturb_future(tables, WEEK, seed=6)
    for back in (1, 2):
        train_week = WEEK.shift(-back)
        assert_frame_equal(labelled_week(changed, train_week), labelled_week(tables, train_week))


def test_feature_values_match_a_direct_count(tables, features):
    hist = weeks.history(tables.transactions, WEEK)
    row = features.filter(pl.col("ca_n") >= 2).row(0, named=True)
    c, a = row["customer_idx"], row["article_idx"]
    mine = hist.filter(pl.col("customer_idx") == c)
    assert row["ca_n"] == mine.filter(pl.col("article_idx") == a).height
    assert row["u_n_all"] == mine.height
    assert row["u_n_4w"] == mine.filter(pl.col("t_dat") >= WEEK.start - pl.duration(days=28)).height
    assert row["u_days_since_last"] == (WEEK.start - mine["t_dat"].max()).days
    assert row["ca_days_since"] == (WEEK.start - mine.filter(pl.col("article_idx") == a)["t_dat"].max()).days
    assert row["u_price_mean"] == pytest.approx(mine["price"].mean(), rel=1e-5)
    product = tables.articles.filter(pl.col("article_idx") == a)["product_code"][0]
    same_product = tables.articles.filter(pl.col("product_code") == product)["article_idx"]
    assert row["cp_n"] == mine.filter(pl.col("article_idx").is_in(same_product.implode())).height
    sold = hist.filter(pl.col("article_idx") == a)
    assert row["a_n_all"] == sold.height
    assert row["a_n_1w"] == sold.filter(pl.col("t_dat") >= WEEK.start - pl.duration(days=7)).height
    assert row["a_days_since_first"] == (WEEK.start - sold["t_dat"].min()).days


def test_embedding_features(tables, features, vectors):
    items, users = vectors
    row = features.row(0, named=True)
    dot = float(items[row["article_idx"]] @ users[row["customer_idx"]])
    assert row["emb_two_tower_dot"] == pytest.approx(dot, rel=1e-4)
    sim = features["emb_recent_sim"].drop_nulls()
    assert sim.min() >= -1.0001 and sim.max() <= 1.0001
    assert features.filter(pl.col("u_n_all") == 0)["emb_recent_sim"].null_count() == features.filter(
        pl.col("u_n_all") == 0
    ).height


def test_features_without_vectors_and_bad_vectors(tables, candidates):
    plain = build_features(tables, WEEK, candidates)
    assert not any(c.startswith("emb_") for c in plain.columns)
    with pytest.raises(ValueError, match=r"item_vectors: expected shape \(\d+, d\)"):
        build_features(tables, WEEK, candidates, np.zeros((3, 4)))
    with pytest.raises(ValueError, match="user_vectors given without item_vectors"):
        build_features(tables, WEEK, candidates, None, np.zeros((tables.n_customers, 4)))
    with pytest.raises(ValueError, match="lack column 'article_idx'"):
        build_features(tables, WEEK, candidates.drop("article_idx"))


def test_labels_mark_the_weeks_purchases(tables, features):
    labelled = attach_labels(features, tables, WEEK)
    bought = weeks.labels(tables.transactions, WEEK).select(KEYS).unique()
    positives = labelled.filter(pl.col("label") == 1).select(KEYS)
    assert positives.height == features.join(bought, on=KEYS, how="semi").height
    assert labelled["label"].dtype == pl.Int8 and set(labelled["label"].unique()) == {0, 1}


def test_training_set_groups_by_week_and_customer(tables):
    frames = [labelled_week(tables, WEEK.shift(-b)) for b in (1, 2)]
    full = training_set(frames, drop_groups_without_positive=False, negatives_per_group=None)
    assert full.height == sum(f.height for f in frames)
    ranked = training_set(frames, negatives_per_group=None)
    per_group = ranked.group_by("group_id").agg(pl.col("label").max(), pl.col("week_start").n_unique(),
                                                pl.col("customer_idx").n_unique())
    assert per_group["label"].min() == 1
    assert per_group["week_start"].max() == 1 and per_group["customer_idx"].max() == 1
    assert ranked["group_id"].to_list() == sorted(ranked["group_id"].to_list())  # contiguous groups
    assert ranked["group_id"].max() + 1 == per_group.height
    sampled = training_set(frames, negatives_per_group=3, seed=1)
    counts = sampled.group_by("group_id").agg((pl.col("label") == 0).sum().alias("neg"))
    assert counts["neg"].max() <= 3
    assert sampled["label"].sum() == ranked["label"].sum()
    assert_frame_equal(sampled, training_set(frames, negatives_per_group=3, seed=1))
    with pytest.raises(ValueError, match="appears twice"):
        training_set([frames[0], frames[0]])
    with pytest.raises(ValueError, match="lacks column 'label'"):
        training_set([frames[0].drop("label")])


def test_rows_by_dense_id_are_the_left_join_and_gaps_fall_back_to_it():
    from hm_recsys.ranking.features import _by_index

    table = pl.DataFrame({"article_idx": [0, 1, 2, 3], "a": [10, 11, 12, 13], "b": [0.5, None, 2.5, 3.5]})
    idx = pl.Series("article_idx", [3, 0, 0, 2, 1], dtype=pl.Int32)
    joined = idx.to_frame().join(table, on="article_idx", how="left", maintain_order="left").drop("article_idx")
    assert_frame_equal(_by_index(table, "article_idx", idx), joined)
    gappy = table.filter(pl.col("article_idx") != 1)  # id 1 missing: a gather would shift every later row
    expected = idx.to_frame().join(gappy, on="article_idx", how="left", maintain_order="left").drop("article_idx")
    assert_frame_equal(_by_index(gappy, "article_idx", idx), expected)
    assert _by_index(gappy, "article_idx", idx)["a"].to_list() == [13, 10, 10, 12, None]
    shuffled = table.reverse()  # every id present but out of order: no gather either
    assert_frame_equal(_by_index(shuffled, "article_idx", idx), joined)


def test_price_moments_are_the_same_bits_for_the_same_prices():
    """Customers with the very same prices (in any row order) get the very same mean and std, equal to a plain
    float64 reference: polars' group-by gave two different stds for 50,000 copies of one price list (see
    ``features._price_moments``), and so different feature bytes from the same data."""
    import datetime as dt
    import statistics

    from hm_recsys.ranking.features import _user_features

    n = 50_000
    prices = np.array([0.005067796446382999, 0.028457626700401306, 0.028457626700401306, 0.028457626700401306], np.float32)
    hist = pl.DataFrame({
        "customer_idx": np.repeat(np.arange(n, dtype=np.int32), 4), "article_idx": np.tile(np.arange(4, dtype=np.int32), n),
        "t_dat": [dt.date(2020, 9, 1)] * (4 * n), "days_ago": np.tile(np.array([1, 2, 3, 40], np.int16), n),
        "price": np.tile(prices, n), "sales_channel_id": np.tile(np.array([1, 2, 2, 1], np.int8), n),
    }).sample(fraction=1.0, shuffle=True, seed=0)
    ids = pl.DataFrame({"customer_idx": np.arange(n + 1, dtype=np.int32)}).lazy()  # the last one bought nothing
    users = _user_features(hist.lazy(), ids, ids).sort("customer_idx").collect()
    values = [float(p) for p in prices]
    want = {"u_price_mean": np.float32(statistics.fmean(values)), "u_price_std": np.float32(statistics.stdev(values))}
    for column, value in want.items():
        assert users[column][:n].unique().to_list() == [value], column
        assert users[column][n] is None
