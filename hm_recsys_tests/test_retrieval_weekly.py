"""Weekly TFRecord shards and warm-started towers: shards are shared between consecutive target weeks,
hold point-in-time features, never see their own future, and week W's warm start sees nothing from W on."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import numpy as np
import polars as pl
import pytest

from hm_recsys.retrieval import tf_env

tf_env.tensorflow()

from hm_recsys.retrieval import brute_force, two_tower  # noqa: E402
from hm_recsys.retrieval import tfrecords as tfr  # noqa: E402
from hm_recsys.retrieval import tower_features as tfeat  # noqa: E402
from hm_recsys.tables import Tables  # noqa: E402
from hm_recsys_tests.leakage import perturb_future  # noqa: E402
from hm_recsys_tests.test_retrieval_tfrecords import TARGET  # noqa: E402
from hm_recsys_tests.test_retrieval_two_tower import fake_image_embeddings  # noqa: E402

CFG = two_tower.TwoTowerConfig(batch_size=512, epochs=2, finetune_epochs=1, shuffle_buffer=4096, warm_start=True,
                               incremental_epochs=1)
PREVIOUS = TARGET.shift(-1)


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _without_root(manifest_bytes: bytes) -> dict:
    return {k: v for k, v in json.loads(manifest_bytes).items() if k != "shards_root"}


@pytest.fixture(scope="module")
def weekly(tmp_path_factory, tiny_tables):
    root = tmp_path_factory.mktemp("weekly")
    first = tfr.write_weekly_window(tiny_tables, PREVIOUS, root / "shards", root / "prev")
    written_before = {p.name: p.stat().st_mtime_ns for p in (root / "shards").iterdir()}
    second = tfr.write_weekly_window(tiny_tables, TARGET, root / "shards", root / "target")
    return tiny_tables, root, first, second, written_before


def test_consecutive_weeks_share_51_of_52_shards(weekly):
    tables, root, first, second, written_before = weekly
    assert first["weeks"]["train"][1:] == second["weeks"]["train"][:-1] and len(second["weeks"]["train"]) == 52
    assert second["weeks"]["train"][-1] == PREVIOUS.key and second["weeks"]["finetune"] == second["weeks"]["train"][-4:]
    after = {p.name: p.stat().st_mtime_ns for p in (root / "shards").iterdir()}
    assert set(after) - set(written_before) == {PREVIOUS.key}  # the one new week
    assert all(after[w] == t for w, t in written_before.items())  # older shards not rewritten
    assert second["vocab_sizes"] == first["vocab_sizes"] == tfr.static_vocab_sizes(tables)
    # shards of another seed are other content: new folders beside the old ones, never a reuse
    other = tfr.write_weekly_window(tables, TARGET, root / "shards", root / "other", seed=1)
    assert not set(other["shard_dirs"].values()) & set(second["shard_dirs"].values())
    assert all(len(list((root / "shards" / w).iterdir())) == 2 for w in second["weeks"]["train"])


def test_shards_written_by_one_thread_or_several_are_the_same_bytes(weekly, tmp_path):
    tables = weekly[0]
    serial = tfr.write_weekly_window(tables, TARGET, tmp_path / "one", tmp_path / "w1", writers=1)
    threaded = tfr.write_weekly_window(tables, TARGET, tmp_path / "four", tmp_path / "w4", writers=4)
    one = _files(tmp_path / "one")
    assert len([k for k in one if k.endswith(".gz")]) > 20 and one == _files(tmp_path / "four")
    assert serial["windows"] == threaded["windows"] and serial["shard_dirs"] == threaded["shard_dirs"]


def test_inputs_shared_by_a_window_give_every_week_the_same_examples(tiny_tables):
    """The first-purchase flags and the sales grid, built once to the target week, give each shard week the
    very rows (bits included) that it computes alone; the grid's cut to a week before any data is empty."""
    shared = tfeat.SharedInputs.of(tiny_tables, TARGET)
    for shard_week in (TARGET.shift(-1), TARGET.shift(-9), TARGET.shift(-25)):
        alone = tfr.week_examples(tiny_tables, shard_week, seed=3)
        assert alone.height > 0
        assert tfr.week_examples(tiny_tables, shard_week, seed=3, shared=shared).equals(alone), shard_week.key
        for week in (shard_week, shard_week.shift(1)):
            a, b = shared.sales.as_of(week), tfeat.WeeklySales.of(tiny_tables, week)
            assert np.array_equal(a.counts, b.counts) and np.array_equal(a.log_price, b.log_price)
            assert (a.price_mean, a.price_std) == (b.price_mean, b.price_std)
    first_day = tiny_tables.transactions["t_dat"].min()
    before = TARGET.shift(-((TARGET.start - first_day).days // 7 + 2))
    assert not shared.sales.as_of(before).counts.any()
    with pytest.raises(ValueError, match="whole number of weeks"):
        shared.sales.as_of(dataclasses.replace(TARGET, start=TARGET.start + dt.timedelta(days=7)))


def test_shard_round_trip_and_point_in_time_user_features(weekly):
    tables, root, _, second, _ = weekly
    ds, n = tfr.weekly_dataset(second, [PREVIOUS.key], batch_size=10_000)
    got = {k: np.concatenate([b[k].numpy() for b in ds]) for k in second["feature_spec"]}
    want = tfr.week_examples(tables, PREVIOUS, seed=PREVIOUS.start.toordinal())
    assert n == want.height == len(got["customer_idx"]) > 0
    for name in second["feature_spec"]:
        w = want[name].to_numpy()
        w = w.astype(np.int64) if got[name].dtype == np.int64 else np.asarray(w, dtype=np.float32).reshape(got[name].shape)
        np.testing.assert_array_equal(got[name], w, err_msg=name)
    # user features as of the shard week's start, not the target week's
    users = tfeat.user_features(tables, PREVIOUS).filter(pl.col("customer_idx").is_in(want["customer_idx"].implode()))
    joined = want.select("customer_idx", "activity").join(users.select("customer_idx", a="activity"), on="customer_idx")
    np.testing.assert_array_equal(joined["activity"].to_numpy(), joined["a"].to_numpy())
    # item_prob: each article's share of the weeks read
    batch = next(iter(tfr.weekly_dataset(second, second["weeks"]["finetune"], batch_size=10_000)[0]))
    counts = pl.concat([pl.read_parquet(root / "shards" / second["shard_dirs"][w] / tfr.ARTICLE_COUNTS)
                        for w in second["weeks"]["finetune"]])
    share = counts.group_by("article_idx").agg(p=pl.col("n").sum() / counts["n"].sum())
    a = int(batch["article_idx"].numpy()[0])
    assert batch["item_prob"].numpy()[0, 0] == pytest.approx(share.filter(pl.col("article_idx") == a)["p"].item(), rel=1e-6)


def test_weekly_window_never_sees_the_target_week(weekly, tmp_path):
    tables, root, _, _, _ = weekly
    tfr.write_weekly_window(perturb_future(tables, TARGET), TARGET, tmp_path / "shards", tmp_path / "target")
    a, b = _files(root / "target"), _files(tmp_path / "target")
    assert a.keys() == b.keys()
    for name in a:
        same = _without_root(a[name]) == _without_root(b[name]) if name == tfr.MANIFEST else a[name] == b[name]
        assert same, f"{name} changed when only rows on/after {TARGET.start} changed"
    old, new = _files(root / "shards"), _files(tmp_path / "shards")
    assert set(new) <= set(old) and all(old[n] == new[n] for n in new)
    # one shard alone (and its content key) sees nothing from its own week's end on
    shard = PREVIOUS.shift(-3)
    future = perturb_future(tables, shard.shift(1))
    key = tfr.shard_keys(future, [shard])[shard.key]
    assert key == tfr.shard_keys(tables, [shard])[shard.key] == tfr.shard_keys(tables, [shard, TARGET])[shard.key]
    tfr.write_week_shard(future, shard, tmp_path / "alone", key=key)
    alone = _files(tmp_path / "alone" / shard.key / key)
    assert alone and alone == {k.split("/", 2)[2]: v for k, v in old.items() if k.startswith(f"{shard.key}/{key}/")}


def test_weekly_shards_do_change_with_their_week(weekly, tmp_path):
    """Guard for the leakage test: changing a purchase inside the shard's week changes the shard."""
    tables, root, _, _, _ = weekly
    day = PREVIOUS.start
    tx = tables.transactions.with_columns(
        article_idx=pl.when(pl.col("t_dat") == day).then((pl.col("article_idx") + 1) % tables.n_articles)
        .otherwise(pl.col("article_idx")))
    assert tables.transactions.filter(pl.col("t_dat") == day).height > 0
    changed = Tables(tables.articles, tables.customers, tx)
    assert tfr.shard_keys(changed, [PREVIOUS])[PREVIOUS.key] != tfr.shard_keys(tables, [PREVIOUS])[PREVIOUS.key]
    assert tfr.shard_keys(changed, [PREVIOUS.shift(-1)]) == tfr.shard_keys(tables, [PREVIOUS.shift(-1)])
    folder = json.loads((root / "target" / tfr.MANIFEST).read_text())["shard_dirs"][PREVIOUS.key]
    tfr.write_week_shard(changed, PREVIOUS, tmp_path, key=folder.split("/")[1])  # same name, to compare bytes
    assert _files(tmp_path / folder) != {k.split("/", 2)[2]: v for k, v in _files(root / "shards").items()
                                         if k.startswith(folder + "/")}


def test_warm_start_trains_from_last_week_without_leakage(weekly, tmp_path):
    tables, root, _, _, _ = weekly
    images = fake_image_embeddings(tables)
    scratch = dataclasses.replace(CFG, warm_start=False)
    two_tower.train(root / "prev", tmp_path / "prev", scratch, images)
    hist = two_tower.train(root / "target", tmp_path / "warm", CFG, images, init_from=tmp_path / "prev")
    assert hist["window"] == "train[-1 weeks]" and len(hist["loss"]) == CFG.incremental_epochs
    shard = json.loads((root / "target" / tfr.MANIFEST).read_text())["shard_dirs"][PREVIOUS.key]
    assert hist["n_examples"] == json.loads((root / "shards" / shard / tfr.SHARD_META).read_text())["n_examples"]
    prev, _ = two_tower.load_model(tmp_path / "prev", root / "prev", images)
    warm, _ = two_tower.load_model(tmp_path / "warm", root / "target", images)
    moved = [np.abs(a - b).mean() / (np.abs(a).mean() + 1e-12)
             for a, b in zip(two_tower.weights_of(prev), two_tower.weights_of(warm), strict=True) if a.ndim == 2]
    assert 0 < np.median(moved) < 0.5  # continued from last week's weights: changed, but not re-initialised
    cands, _ = brute_force.retrieve(tmp_path / "warm", root / "target", k=20, image_embeddings=images)
    assert cands.height == tables.n_customers * 20
    # week W's warm start sees nothing on/after W.start: same weights from perturbed future rows
    tfr.write_weekly_window(perturb_future(tables, TARGET), TARGET, tmp_path / "shards", tmp_path / "target")
    two_tower.train(tmp_path / "target", tmp_path / "warm2", CFG, images, init_from=tmp_path / "prev")
    other, _ = two_tower.load_model(tmp_path / "warm2", tmp_path / "target", images)
    for a, b in zip(two_tower.weights_of(warm), two_tower.weights_of(other), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="earlier week"):
        two_tower.train(root / "prev", tmp_path / "x", CFG, images, init_from=tmp_path / "warm")
    with pytest.raises(ValueError, match="warm_start is False"):
        two_tower.train(root / "target", tmp_path / "x", scratch, images, init_from=tmp_path / "prev")
