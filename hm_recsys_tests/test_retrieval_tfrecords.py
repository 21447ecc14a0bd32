"""TFRecord ETL: exact round trip, the wire encoder against protobuf, and no leakage from the target week."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from hm_recsys.retrieval import tf_env

tf, _ = tf_env.tensorflow()

from hm_recsys.retrieval import tfrecords as tfr  # noqa: E402
from hm_recsys.retrieval import tower_features as tfeat  # noqa: E402
from hm_recsys.tables import Tables  # noqa: E402
from hm_recsys.weeks import TargetWeek  # noqa: E402
from hm_recsys_tests.leakage import perturb_future  # noqa: E402

TARGET = TargetWeek(dt.date(2020, 9, 16))  # the tiny world's last full week


@pytest.fixture(scope="module")
def tables(tiny_tables) -> Tables:
    """The tiny synthetic world, cut after the target week (the window arithmetic needs nothing later)."""
    assert tiny_tables.transactions.filter(pl.col("t_dat") >= TARGET.start).height > 0
    return tiny_tables


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "timing.json"}


def test_encoder_matches_protobuf():
    rng = np.random.default_rng(3)
    n = 64
    cols = {
        "small": rng.integers(0, 128, n),
        "edge": np.array([0, 127, 128, 16383, 16384, 2**31, 2**35, 2**62] * 8),
        "vec": rng.standard_normal((n, 45)).astype(np.float32) * 1e3,
        "one": rng.random((n, 1), dtype=np.float32),
    }
    flat, offsets = tfr.encode_examples(cols)
    for i in range(n):
        ex = tf.train.Example.FromString(flat[offsets[i] : offsets[i + 1]].tobytes())
        f = ex.features.feature
        assert set(f.keys()) == set(cols)
        assert f["small"].int64_list.value[:] == [cols["small"][i]]
        assert f["edge"].int64_list.value[:] == [cols["edge"][i]]
        np.testing.assert_array_equal(np.array(f["vec"].float_list.value, dtype=np.float32), cols["vec"][i])
        np.testing.assert_array_equal(np.array(f["one"].float_list.value, dtype=np.float32), cols["one"][i])


def test_encoder_rejects_negative_ids():
    with pytest.raises(ValueError, match="negative"):
        tfr.encode_examples({"customer_idx": np.array([3, -1])})


def test_round_trip_preserves_every_feature(tables, tmp_path):
    manifest = tfr.write_tfrecords(tables, TARGET, tmp_path / "tfr", n_shards=3, seed=5)
    users = tfeat.user_features(tables, TARGET)
    for window, days, seed in (("train", 365, 5), ("finetune", 30, 6)):
        expected = tfeat.examples(tables, TARGET, days, users, seed=seed)
        paths = tfr.window_paths(tmp_path / "tfr", window)
        assert len(paths) == 3 and all(p.endswith(".tfrecord.gz") for p in paths)
        # one shard at a time: shard order = row order of the written frame
        got: dict[str, list] = {}
        for p in paths:
            for batch in tfr.read_dataset([p], manifest["feature_spec"], batch_size=100):
                for k, v in batch.items():
                    got.setdefault(k, []).append(v.numpy())
        assert set(got) == set(expected.columns) == set(manifest["feature_spec"])
        assert manifest["windows"][window]["n_examples"] == expected.height
        for name in expected.columns:
            values = np.concatenate(got[name])
            want = expected[name].to_numpy()
            want = want.astype(np.int64) if values.dtype == np.int64 else np.asarray(want, dtype=np.float32).reshape(values.shape)
            np.testing.assert_array_equal(values, want, err_msg=f"{window}/{name}")
    assert manifest["vocab_sizes"]["customer_key"] == tables.n_customers + 1
    first_day = dt.date.fromisoformat(manifest["windows"]["train"]["first_day"])
    assert (TARGET.start - first_day).days == 365


def test_examples_never_see_the_target_week(tables, tmp_path):
    tfr.write_tfrecords(tables, TARGET, tmp_path / "a", n_shards=2, seed=1)
    tfr.write_tfrecords(perturb_future(tables, TARGET), TARGET, tmp_path / "b", n_shards=2, seed=1)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) >= 6
    for name in a:
        assert a[name] == b[name], f"{name} changed when only rows on/after {TARGET.start} changed"


def test_features_do_change_with_the_past(tables, tmp_path):
    """Guard for the leakage test: the same comparison does see a change before the cutoff."""
    tx = tables.transactions
    earlier = tx.with_columns(
        article_idx=pl.when(pl.col("t_dat") == pl.col("t_dat").filter(pl.col("t_dat") < TARGET.start).max())
        .then((pl.col("article_idx") + 1) % tables.n_articles)
        .otherwise(pl.col("article_idx"))
    )
    tfr.write_tfrecords(tables, TARGET, tmp_path / "a", n_shards=1)
    tfr.write_tfrecords(Tables(tables.articles, tables.customers, earlier), TARGET, tmp_path / "b", n_shards=1)
    assert _files(tmp_path / "a") != _files(tmp_path / "b")


def test_uncompressed_shards_read_back(tables, tmp_path):
    manifest = tfr.write_tfrecords(tables, TARGET, tmp_path / "plain", n_shards=2, compression=None)
    paths = tfr.window_paths(tmp_path / "plain", "finetune")
    assert all(p.endswith(".tfrecord") for p in paths)
    n = sum(int(b["customer_idx"].shape[0]) for b in tfr.read_dataset(paths, manifest["feature_spec"], 64))
    assert n == manifest["windows"]["finetune"]["n_examples"]


def test_bad_keys_are_named(tables, tmp_path):
    bad = tables.transactions.with_columns(
        article_idx=pl.when(pl.int_range(pl.len()) == 5).then(tables.n_articles + 3).otherwise(pl.col("article_idx"))
    )
    with pytest.raises(ValueError, match="key out of range"):
        tfr.write_tfrecords(Tables(tables.articles, tables.customers, bad), TARGET, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_item_features_are_point_in_time(tiny_tables):
    """An example sees the article as it was the week before the purchase; the target week sees last week."""
    week = TargetWeek(dt.date(2020, 8, 19))
    d = week.start - dt.timedelta(days=1)        # last day before the cutoff (week k=0)
    rows = [
        (d - dt.timedelta(days=14), 0, 0, 0.02),  # k=2: article 0's first sale
        (d - dt.timedelta(days=7), 1, 0, 0.02),   # k=1
        (d - dt.timedelta(days=7), 2, 0, 0.02),   # k=1
        (d, 0, 1, 0.05),                          # k=0: article 1 never sold before
        (week.start, 3, 1, 0.05),                 # the target week itself: invisible
    ]
    base = tiny_tables  # its catalogue and customers; the transactions are the five rows above
    tx = pl.DataFrame(rows, schema=["t_dat", "customer_idx", "article_idx", "price"], orient="row").with_columns(
        sales_channel_id=pl.lit(2)
    ).cast(base.transactions.schema)
    tables = Tables(base.articles, base.customers, tx)
    ex = tfeat.examples(tables, week, 365, tfeat.user_features(tables, week)).sort("customer_idx", "article_idx")
    rec = {(r["customer_idx"], r["article_idx"]): r["item_recency"] for r in ex.iter_rows(named=True)}
    assert rec[(0, 0)] == [0.0, 0.0, 1.0, 0.0]                    # first sale: nothing before it
    np.testing.assert_allclose(rec[(1, 0)], [np.log1p(1), np.log1p(1) / 2, 0.0, np.log1p(1) / 2])  # one sale the week before
    np.testing.assert_allclose(rec[(0, 1)], [0.0, 0.0, 1.0, 0.0])
    price = {(r["customer_idx"], r["article_idx"]): r["item_price"] for r in ex.iter_rows(named=True)}
    assert price[(0, 0)][1] == 1.0 and price[(1, 0)][1] == 0.0
    items = tfeat.item_features(tables, week)
    np.testing.assert_allclose(items["item_recency"][1].to_list(), [np.log1p(1), np.log1p(1) / 2, 0.0, np.log1p(1) / 2])
    np.testing.assert_allclose(items["item_recency"][0].to_list(), [0.0, np.log1p(3) / 2, 0.0, np.log1p(3) / 2])
    assert items["item_price"][1][0] > items["item_price"][0][0]  # dearer article, higher price level
    # point-in-time keys: the first-week purchase of an article saw it as unknown
    pit = tfeat.examples(tables, week, 365, tfeat.user_features(tables, week), tfeat.FeatureParams(point_in_time_keys=True))
    keys = {(r["customer_idx"], r["article_idx"]): r["article_key"] for r in pit.iter_rows(named=True)}
    assert keys[(0, 0)] == 0 and keys[(1, 0)] == 1 and keys[(0, 1)] == 0
    assert set(ex["article_key"].to_list()) == {1, 2}


def test_user_features_for_some_customers_are_their_rows_of_everyones(tables):
    """A weekly shard featurises only its buyers: their rows must be the very rows computed for everyone
    (population statistics such as the price z-score still come from every customer)."""
    everyone = tfeat.user_features(tables, TARGET)
    some = np.array([7, 3, 3, 0, tables.n_customers - 1, 11, 5], dtype=np.int32)
    got = tfeat.user_features(tables, TARGET, customers=some)
    assert got["customer_idx"].to_list() == sorted(set(some.tolist()))
    expected = everyone.filter(pl.col("customer_idx").is_in(pl.Series(some).implode()))
    assert got.equals(expected)
    assert expected["category_affinity"].arr.sum().sum() > 0  # the comparison covers real affinities
