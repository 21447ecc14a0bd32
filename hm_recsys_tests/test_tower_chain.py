"""The warm-start chain of towers: fixed anchor weeks, links reused only when recomputing them would give
the same bytes, the same towers whichever weeks were built before, and nothing seen from week W on."""

from __future__ import annotations

import dataclasses
import shutil

import polars as pl
import pytest

from hm_recsys.retrieval import tf_env

tf_env.tensorflow()

from hm_recsys.retrieval import tower_chain, two_tower  # noqa: E402
from hm_recsys.tables import Tables  # noqa: E402
from hm_recsys_tests.leakage import perturb_future  # noqa: E402
from hm_recsys_tests.test_retrieval_tfrecords import TARGET  # noqa: E402
from hm_recsys_tests.test_retrieval_two_tower import fake_image_embeddings  # noqa: E402

CFG = two_tower.TwoTowerConfig(batch_size=512, epochs=2, finetune_epochs=1, shuffle_buffer=4096, warm_start=True,
                               incremental_epochs=1, anchor_every=3)


def _weights(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name.startswith(("user_tower", "item_tower"))}


def test_anchor_weeks_are_fixed_calendar_weeks():
    weeks = [TARGET.shift(i) for i in range(-6, 6)]
    anchors = [tower_chain.anchor_of(w, 3) for w in weeks]
    assert all(0 <= (w.start - a.start).days < 3 * 7 and tower_chain.anchor_of(a, 3) == a for w, a in zip(weeks, anchors))
    starts = [i for i, (w, a) in enumerate(zip(weeks, anchors)) if w == a]
    assert len(starts) == 4 and all(b - a == 3 for a, b in zip(starts, starts[1:]))  # every 3rd week, fixed
    assert tower_chain.anchor_of(TARGET, 1) == TARGET
    with pytest.raises(ValueError, match="anchor_every"):
        tower_chain.anchor_of(TARGET, 0)


@pytest.fixture(scope="module")
def chained(tmp_path_factory, tiny_tables):
    """The chain through the week after a fresh anchor, built from nothing."""
    images = fake_image_embeddings(tiny_tables)
    week = tower_chain.anchor_of(TARGET, CFG.anchor_every).shift(2)  # anchor + 2 warm links
    root = tmp_path_factory.mktemp("chain")
    link, records = tower_chain.train_chain(tiny_tables, week, root / "shards", root / "chain", CFG, images)
    return tiny_tables, images, week, root, link, records


def test_a_week_builds_its_links_from_the_anchor(chained):
    _, _, week, _, link, records = chained
    assert [r["week"] for r in records] == [week.shift(-2).key, week.shift(-1).key, week.key]
    assert [r["start"] for r in records] == ["scratch", "warm", "warm"] and not any(r["reused"] for r in records)
    assert (link / two_tower.MODEL_META).is_file() and link.parent.name == week.key


def test_built_week_by_week_or_at_once_gives_the_same_towers(chained, tmp_path):
    tables, images, week, root, link, _ = chained
    for earlier in (week.shift(-2), week.shift(-1)):  # incremental: the earlier weeks first
        tower_chain.train_chain(tables, earlier, tmp_path / "shards", tmp_path / "chain", CFG, images)
    again, records = tower_chain.train_chain(tables, week, tmp_path / "shards", tmp_path / "chain", CFG, images)
    assert [r["reused"] for r in records] == [True, True, False]
    assert again.relative_to(tmp_path) == link.relative_to(root)  # same content key
    assert _weights(again) == _weights(link)


def test_the_chain_never_sees_its_week_or_later(chained, tmp_path):
    tables, images, week, root, link, _ = chained
    future, records = tower_chain.train_chain(perturb_future(tables, week), week, tmp_path / "shards",
                                              tmp_path / "chain", CFG, images)
    assert future.relative_to(tmp_path) == link.relative_to(root)
    assert _weights(future) == _weights(link)


def test_a_changed_old_row_retrains_the_links_that_saw_it(chained, tmp_path):
    tables, images, week, root, link, _ = chained
    day = week.shift(-2).start  # read by the first warm link (its new week), not by the anchor (before it)
    tx = tables.transactions.with_columns(
        price=pl.when(pl.col("t_dat") == day).then(pl.col("price") * 2).otherwise(pl.col("price")))
    assert tables.transactions.filter(pl.col("t_dat") == day).height > 0
    changed = Tables(tables.articles, tables.customers, tx)
    old = tmp_path / "old"
    shutil.copytree(root, old)  # the links of the old data are there: only the anchor may be reused
    other, records = tower_chain.train_chain(changed, week, old / "shards", old / "chain", CFG, images)
    assert [r["reused"] for r in records] == [True, False, False]
    assert _weights(other) != _weights(link)
    scratch, _ = tower_chain.train_chain(changed, week, tmp_path / "shards", tmp_path / "chain", CFG, images)
    assert _weights(scratch) == _weights(other)


def test_warm_start_must_be_set(chained, tmp_path):
    tables, images, week, *_ = chained
    with pytest.raises(ValueError, match="warm_start"):
        tower_chain.train_chain(tables, week, tmp_path / "s", tmp_path / "c", dataclasses.replace(CFG, warm_start=False), images)
