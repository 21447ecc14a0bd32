"""The bucketed (memory-bounded) ranking path gives exactly the one-pass union, features, top-12 and training rows."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from hm_recsys import baselines, metrics, weeks
from hm_recsys.buckets import bucket_files, customer_buckets, scan_buckets
from hm_recsys.candidates import run_sources, union_candidates, write_union_buckets
from hm_recsys.ranking import (
    attach_labels,
    build_features,
    recommend,
    recommend_from_buckets,
    score,
    train_ranker,
    training_rows,
    training_set,
    write_feature_buckets,
)
from hm_recsys.ranking.bucketed import sample_customers
from hm_recsys.weeks import TargetWeek
from hm_recsys_tests.leakage import perturb_future

KEYS = ["customer_idx", "article_idx"]
SOURCE_PARAMS = {"als": {"factors": 8, "iterations": 3}}
BUCKET = 333  # 2,000 tiny-world customers -> 7 buckets, the last one shorter


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(KEYS)


@pytest.fixture(scope="module")
def week(tiny_tables) -> TargetWeek:
    return TargetWeek(weeks.week_start(tiny_tables.transactions["t_dat"].max()))


@pytest.fixture(scope="module")
def vectors(tiny_tables):
    rng = np.random.default_rng(0)
    return rng.normal(size=(tiny_tables.n_articles, 12)), rng.normal(size=(tiny_tables.n_customers, 12))


def _write_sources(tables, week, folder):
    folder.mkdir(parents=True, exist_ok=True)
    sources = run_sources(tables, week, params=SOURCE_PARAMS)
    paths = {}
    for name, frame in sources.items():
        paths[name] = folder / f"{name}.parquet"
        frame.write_parquet(paths[name])
    return sources, paths


@pytest.fixture(scope="module")
def world(tiny_tables, week, vectors, tmp_path_factory):
    """Sources, one-pass union / features and the bucketed union / features of the target week."""
    root = tmp_path_factory.mktemp("bucketed")
    sources, paths = _write_sources(tiny_tables, week, root / "sources")
    union = union_candidates(sources)
    meta = write_union_buckets(paths, root / "union", tiny_tables.n_customers, BUCKET,
                               purchases=weeks.labels(tiny_tables.transactions, week))
    fmeta = write_feature_buckets(tiny_tables, week, root / "union", root / "features", *vectors)
    return {"root": root, "sources": sources, "paths": paths, "union": union, "union_meta": meta,
            "features": build_features(tiny_tables, week, union, *vectors), "features_meta": fmeta}


def test_bucketed_union_equals_one_pass_union(world, tiny_tables):
    files = bucket_files(world["root"] / "union")
    assert [f.name for f in files] == [f"bucket={i:04d}.parquet" for i in range(7)]
    assert_frame_equal(_sorted(scan_buckets(world["root"] / "union").collect()), _sorted(world["union"]))
    for bucket, path in zip(customer_buckets(tiny_tables.n_customers, BUCKET), files):
        ids = pl.read_parquet(path, columns=["customer_idx"])["customer_idx"]
        assert ids.min() >= bucket.start and ids.max() < bucket.stop
    assert world["union_meta"]["rows"] == world["union"].height
    assert world["union_meta"]["buckets"] == 7


def test_bucketed_recall_sums_to_the_whole_frame_recall(world, tiny_tables, week):
    purchases = weeks.labels(tiny_tables.transactions, week)
    per_source = world["union_meta"]["per_source"]
    for name, frame in [*world["sources"].items(), ("union", world["union"])]:
        assert per_source[name]["rows"] == frame.height
        assert per_source[name]["customers"] == frame["customer_idx"].n_unique()
        assert per_source[name]["recall"] == pytest.approx(metrics.recall(frame, purchases), abs=1e-12)


def test_bucketed_features_equal_one_pass_features(world):
    bucketed = scan_buckets(world["root"] / "features").collect()
    one_pass = world["features"]
    assert bucketed.columns == one_pass.columns
    assert_frame_equal(_sorted(bucketed), _sorted(one_pass))
    assert world["features_meta"]["rows"] == one_pass.height
    assert "emb_two_tower_dot" in world["features_meta"]["features"]


@pytest.fixture(scope="module")
def train_union(world, tiny_tables, week):
    """The previous week's source files and bucketed union folder."""
    _, paths = _write_sources(tiny_tables, week.shift(-1), world["root"] / "train_sources")
    write_union_buckets(paths, world["root"] / "train_union", tiny_tables.n_customers, BUCKET)
    return paths, world["root"] / "train_union"


@pytest.fixture(scope="module")
def model(train_union, tiny_tables, week, vectors):
    """A small ranker trained on the previous week's bucketed training rows."""
    rows = training_rows(tiny_tables, week.shift(-1), train_union[1], *vectors, negatives_per_buyer=10)
    return train_ranker(training_set([rows], negatives_per_group=None), {"iterations": 30}, task_type="CPU")


def test_bucketed_final_top12_equals_one_pass(world, model, tiny_tables, week):
    popular = baselines.popular_articles(tiny_tables, week)
    bucketed = recommend_from_buckets(model, world["root"] / "features", popular, tiny_tables.n_customers)
    one_pass = recommend(model, world["features"], popular, tiny_tables.n_customers)
    assert bucketed.height == tiny_tables.n_customers * metrics.K
    assert_frame_equal(bucketed, one_pass)
    # the small-data guard's blend (ranking/blend.py) reads the heuristic's ranks from the same buckets
    from hm_recsys.ranking.blend import POPULAR_DEPTH, blend_top_k
    from hm_recsys.submission import fill_popular

    deep = baselines.popular_articles(tiny_tables, week, n=POPULAR_DEPTH)
    blended = recommend_from_buckets(model, world["root"] / "features", popular, tiny_tables.n_customers,
                                     blend_weight=0.5, blend_popular=deep)
    expected = fill_popular(blend_top_k(score(model, world["features"]), 0.5, deep), popular, tiny_tables.n_customers)
    assert_frame_equal(blended, expected)
    assert not blended.equals(bucketed)


def test_training_rows_are_sampled_one_pass_rows(train_union, tiny_tables, week, vectors, tmp_path):
    train_week = week.shift(-1)
    paths, union_dir = train_union
    rows = training_rows(tiny_tables, train_week, union_dir, *vectors, negatives_per_buyer=5, seed=3)
    union = scan_buckets(union_dir).collect()
    bought = weeks.labels(tiny_tables.transactions, train_week).select(KEYS).unique()
    buyers_union = union.join(bought.select("customer_idx").unique(), on="customer_idx", how="semi")
    full = attach_labels(build_features(tiny_tables, train_week, buyers_union, *vectors), tiny_tables, train_week)
    # Same values as the one-pass features of those rows.
    assert_frame_equal(_sorted(rows), _sorted(full.join(rows.select(KEYS), on=KEYS, how="semi")))
    # Every candidate positive kept, at most 5 negatives per buyer, only buyers with a positive.
    assert rows["label"].sum() == full["label"].sum()
    per_buyer = rows.group_by("customer_idx").agg(neg=(pl.col("label") == 0).sum(), pos=pl.col("label").sum())
    assert per_buyer["neg"].max() == 5 and per_buyer["pos"].min() >= 1
    with_pos = full.group_by("customer_idx").agg(pl.col("label").max()).filter(pl.col("label") > 0)
    assert per_buyer.height == with_pos.height
    # Deterministic, independent of the bucket layout, and the seed matters.
    write_union_buckets(paths, tmp_path / "union_1000", tiny_tables.n_customers, 1000)
    again = training_rows(tiny_tables, train_week, tmp_path / "union_1000", *vectors, negatives_per_buyer=5, seed=3)
    assert_frame_equal(again, rows)
    other = training_rows(tiny_tables, train_week, union_dir, *vectors, negatives_per_buyer=5, seed=4)
    assert not other.select(KEYS).equals(rows.select(KEYS))
    everything = training_rows(tiny_tables, train_week, union_dir, *vectors,
                               negatives_per_buyer=None, drop_buyers_without_positive=False)
    assert_frame_equal(_sorted(everything), _sorted(full))


def test_sample_customers_is_seeded_and_ignores_order_and_repeats():
    ids = np.arange(10_000, 0, -3)
    kept = sample_customers(ids, 500, seed=1)
    assert kept.size == 500 and np.all(np.diff(kept) > 0) and np.isin(kept, ids).all()
    assert np.array_equal(sample_customers(np.concatenate([ids[::-1], ids]), 500, seed=1), kept)
    assert not np.array_equal(sample_customers(ids, 500, seed=2), kept)
    assert np.array_equal(sample_customers(ids, ids.size + 1, seed=1), np.sort(ids))
    assert np.array_equal(sample_customers(ids, None, seed=1), np.sort(ids))


def test_training_rows_of_a_buyer_sample_are_those_buyers_rows(train_union, tiny_tables, week, vectors):
    train_week = week.shift(-1)
    _, union_dir = train_union
    args = dict(negatives_per_buyer=None, drop_buyers_without_positive=False, seed=3)
    everything = training_rows(tiny_tables, train_week, union_dir, *vectors, **args)
    buyers = weeks.labels(tiny_tables.transactions, train_week)["customer_idx"].to_numpy()
    kept = sample_customers(buyers, 40, seed=3)
    assert kept.size == 40 < np.unique(buyers).size
    sampled = training_rows(tiny_tables, train_week, union_dir, *vectors, max_buyers=40, **args)
    assert set(sampled["customer_idx"].unique().to_list()) <= set(kept.tolist())
    assert_frame_equal(_sorted(sampled),
                       _sorted(everything.filter(pl.col("customer_idx").is_in(pl.Series(kept, dtype=pl.Int32).implode()))))


def test_bucket_edges_one_customer_per_bucket_and_one_bucket_for_all(world, tiny_tables, week, tmp_path):
    n = 8
    subset = {name: frame.filter(pl.col("customer_idx") < n) for name, frame in world["sources"].items()}
    subset["popular"] = subset["popular"].filter(pl.col("customer_idx") != 5)  # leaves customer 5 to fewer sources
    paths = {}
    for name, frame in subset.items():
        paths[name] = tmp_path / f"{name}.parquet"
        frame.write_parquet(paths[name])
    union = union_candidates(subset)
    one_pass = build_features(tiny_tables, week, union)
    for bucket_customers, n_files in [(1, n), (3, 3), (10_000, 1)]:
        out = tmp_path / f"union_{bucket_customers}"
        write_union_buckets(paths, out, n, bucket_customers)
        assert len(bucket_files(out)) == n_files
        assert_frame_equal(_sorted(scan_buckets(out).collect()), _sorted(union))
        write_feature_buckets(tiny_tables, week, out, tmp_path / f"features_{bucket_customers}")
        assert_frame_equal(_sorted(scan_buckets(tmp_path / f"features_{bucket_customers}").collect()),
                           _sorted(one_pass))
    assert [(b.start, b.stop) for b in customer_buckets(10, 4)] == [(0, 4), (4, 8), (8, 10)]
    assert customer_buckets(0, 4) == []
    with pytest.raises(ValueError, match="bucket_customers must be >= 1"):
        customer_buckets(10, 0)


def test_a_bucket_without_candidates_still_has_its_file(world, tiny_tables, week, tmp_path):
    frame = world["sources"]["repurchase"].filter(pl.col("customer_idx").is_in([0, 1, 7]))
    frame.write_parquet(tmp_path / "repurchase.parquet")
    write_union_buckets({"repurchase": tmp_path / "repurchase.parquet"}, tmp_path / "union", 8, 2)
    files = bucket_files(tmp_path / "union")
    assert len(files) == 4 and pl.read_parquet(files[1]).height == 0 and pl.read_parquet(files[2]).height == 0
    write_feature_buckets(tiny_tables, week, tmp_path / "union", tmp_path / "features")
    assert_frame_equal(_sorted(scan_buckets(tmp_path / "features").collect()),
                       _sorted(build_features(tiny_tables, week, union_candidates({"repurchase": frame}))))


def test_rows_outside_the_customer_range_fail_and_keep_the_old_dataset(world, tmp_path):
    frame = world["sources"]["repurchase"].filter(pl.col("customer_idx") < 10)
    frame.write_parquet(tmp_path / "repurchase.parquet")
    write_union_buckets({"repurchase": tmp_path / "repurchase.parquet"}, tmp_path / "union", 10, 4)
    before = scan_buckets(tmp_path / "union").collect()
    with pytest.raises(ValueError, match=r"candidates 'repurchase': \d+ rows have a customer_idx outside 0\.\.4"):
        write_union_buckets({"repurchase": tmp_path / "repurchase.parquet"}, tmp_path / "union", 5, 4)
    assert_frame_equal(scan_buckets(tmp_path / "union").collect(), before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repurchase.parquet", "union"]
    with pytest.raises(FileNotFoundError, match="not found"):
        write_union_buckets({"x": tmp_path / "missing.parquet"}, tmp_path / "other", 5, 4)


def test_bucketed_features_ignore_the_target_week_and_later(world, tiny_tables, week, vectors, tmp_path):
    changed = perturb_future(tiny_tables, week, seed=7)
    write_feature_buckets(changed, week, world["root"] / "union", tmp_path / "features", *vectors)
    assert_frame_equal(scan_buckets(tmp_path / "features").collect(),
                       scan_buckets(world["root"] / "features").collect())


def test_training_rows_ignore_the_week_after_and_later(train_union, tiny_tables, week, vectors):
    changed = perturb_future(tiny_tables, week, seed=8)
    args = (week.shift(-1), train_union[1], *vectors)
    assert_frame_equal(training_rows(changed, *args, negatives_per_buyer=5),
                       training_rows(tiny_tables, *args, negatives_per_buyer=5))
