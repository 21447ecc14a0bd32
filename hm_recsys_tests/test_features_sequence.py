"""Sequence features (``seq_``): exact values on a hand-made history, point in time, per bucket = one pass, and
the ``sequence`` switch (off: those columns absent, every other one unchanged; part of the training assets'
code versions, so a model always learns the features it is scored on)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from hm_recsys import weeks
from hm_recsys.candidates import run_sources, union_candidates
from hm_recsys.ranking import build_features, feature_context, features_for
from hm_recsys.tables import Tables
from hm_recsys.weeks import TargetWeek
from hm_recsys_tests.leakage import perturb_future
from hm_recsys_tests.ranking_toy_world import LAST_WEEK, toy_world

KEYS = ["customer_idx", "article_idx"]
WEEK = TargetWeek(dt.date(2020, 9, 16))
# article_idx -> product, product type, colour, department, garment group
ARTICLES = [(1, 10, 1, 100, 1000), (1, 10, 2, 100, 1000), (2, 11, 1, 101, 1000),
            (3, 12, 3, 102, 1001), (4, 10, 3, 101, 1001), (5, 13, 4, 103, 1002)]
# customer 0: a1 40 days before the cutoff, a0 30, a3 20, a0 twice and a2 10; customer 1: a5 once; customer 2: nothing
HISTORY = [(0, 1, 40), (0, 0, 30), (0, 3, 20), (0, 0, 10), (0, 0, 10), (0, 2, 10), (1, 5, 5)]
CANDIDATES = [(0, 0), (0, 1), (0, 4), (0, 5), (1, 5), (1, 0), (2, 0)]


def _tx(rows: list[tuple[int, int, int]]) -> pl.DataFrame:
    """(customer, article, days before WEEK.start; negative: on or after it) as typed transactions."""
    base = toy_world().transactions
    return pl.DataFrame({"t_dat": [WEEK.start - dt.timedelta(days=d) for _, _, d in rows],
                         "customer_idx": [c for c, _, _ in rows], "article_idx": [a for _, a, _ in rows],
                         "price": [0.01] * len(rows), "sales_channel_id": [2] * len(rows)}).cast(base.schema)


def _tables(rows=HISTORY) -> Tables:
    toy = toy_world()
    cols = ["product_code", "product_type_no", "colour_group_code", "department_no", "garment_group_no"]
    articles = toy.articles.head(len(ARTICLES)).with_columns(
        pl.Series(c, [a[i] for a in ARTICLES], dtype=toy.articles.schema[c]) for i, c in enumerate(cols))
    return Tables(articles, toy.customers.head(3), _tx(rows).sort("t_dat", maintain_order=True))


def _candidates() -> pl.DataFrame:
    return pl.DataFrame(CANDIDATES, schema=KEYS, orient="row").cast(pl.Int32).with_columns(n_sources=pl.lit(1))


def _row(frame: pl.DataFrame, c: int, a: int) -> dict:
    return frame.filter((pl.col("customer_idx") == c) & (pl.col("article_idx") == a)).row(0, named=True)


ITEMS = np.random.default_rng(0).normal(size=(len(ARTICLES), 5))


def test_hand_computed_values():
    f = build_features(_tables(), WEEK, _candidates(), ITEMS)
    # customer 0: purchase days 40, 30, 20, 10 (the repeated a0 counts once): mean gap 10, last 10 days ago
    assert (_row(f, 0, 0)["seq_u_gap"], _row(f, 0, 0)["seq_u_due"]) == (10.0, 1.0)
    a0 = _row(f, 0, 0)  # bought 30 and 10 days ago: cycle 20, due 10/20; latest distinct article (a0 < a2 on day 10)
    assert (a0["seq_ca_rank"], a0["seq_ca_gap"], a0["seq_ca_due"]) == (1, 20.0, 0.5)
    assert (a0["seq_cp_gap"], a0["seq_cp_due"]) == (15.0, pytest.approx(10 / 15))  # product 1: days 40, 30, 10
    last = {k: a0[f"seq_last_{k}"] for k in ("product", "type", "colour", "dept", "garment")}
    assert last == {"product": 1, "type": 1, "colour": 1, "dept": 1, "garment": 1}
    # the last three distinct articles: a0, a2 (same day, higher idx), a3
    a1 = _row(f, 0, 1)
    assert (a1["seq_ca_rank"], a1["seq_ca_gap"], a1["seq_ca_due"]) == (4, None, None)
    assert (a1["seq_cp_gap"], a1["seq_cp_due"]) == (15.0, pytest.approx(10 / 15))
    assert [a1[f"seq_last_{k}"] for k in last] == [1, 1, 0, 1, 1]
    assert [a1[f"seq_last3_{k}"] for k in last] == [1, 1, 0, 1, 2]
    a4 = _row(f, 0, 4)
    assert (a4["seq_ca_rank"], a4["seq_cp_gap"], a4["seq_cp_due"]) == (None, None, None)
    assert [a4[f"seq_last_{k}"] for k in last] == [0, 1, 0, 0, 0]
    assert [a4[f"seq_last3_{k}"] for k in last] == [0, 1, 1, 1, 1]
    assert [_row(f, 0, 5)[f"seq_last3_{k}"] for k in last] == [0, 0, 0, 0, 0]
    one = _row(f, 1, 5)  # a single purchase: no gap, no due
    assert (one["seq_u_gap"], one["seq_u_due"], one["seq_ca_rank"], one["seq_ca_gap"]) == (None, None, 1, None)
    assert one["seq_last_product"] == 1 and _row(f, 1, 0)["seq_last_product"] == 0
    new = _row(f, 2, 0)  # no history: gaps and similarities null, matches 0
    assert all(new[c] is None for c in ("seq_u_gap", "seq_u_due", "seq_ca_rank", "seq_cp_gap", "seq_last_sim",
                                        "seq_last3_sim"))
    assert all(new[f"seq_{n}_{k}"] == 0 for n in ("last", "last3") for k in last)

    coords = feature_context(_tables(), WEEK, ITEMS).coords
    unit = coords / np.linalg.norm(coords, axis=1, keepdims=True)
    for a in (0, 1, 4, 5):
        row = _row(f, 0, a)
        assert row["seq_last_sim"] == pytest.approx(unit[a] @ unit[0], abs=1e-5)
        assert row["seq_last3_sim"] == pytest.approx(np.mean([unit[a] @ unit[b] for b in (0, 2, 3)]), abs=1e-5)
    assert _row(f, 1, 0)["seq_last_sim"] == pytest.approx(_row(f, 1, 0)["seq_last3_sim"], abs=1e-6)  # one article


def test_purchases_on_or_after_the_week_start_change_nothing():
    base = build_features(_tables(), WEEK, _candidates(), ITEMS)
    later = [(0, 4, 0), (0, 5, -1), (1, 5, 0), (2, 0, 0), (2, 3, -6), (1, 0, -20)]  # day 0 = the week's start
    assert_frame_equal(build_features(_tables(HISTORY + later), WEEK, _candidates(), ITEMS), base)
    # guard: the same comparison sees a purchase the day before the cutoff
    moved = build_features(_tables(HISTORY + [(0, 4, 1)]), WEEK, _candidates(), ITEMS)
    assert _row(moved, 0, 4)["seq_ca_rank"] == 1 and _row(moved, 0, 0)["seq_u_due"] != 1.0


@pytest.fixture(scope="module")
def toy():
    tables = toy_world()
    buyers = weeks.labels(tables.transactions, LAST_WEEK)["customer_idx"].unique()
    candidates = union_candidates(run_sources(tables, LAST_WEEK, buyers, params={"als": {"factors": 8, "iterations": 3}}))
    items = np.random.default_rng(1).normal(size=(tables.n_articles, 12))
    return tables, candidates, items


def test_toy_world_ignores_the_target_week_and_later(toy):
    tables, candidates, items = toy
    seq = pl.col("^seq_.*$")
    base = build_features(tables, LAST_WEEK, candidates, items).select(*KEYS, seq)
    assert base.width == 2 + 19 and base["seq_ca_rank"].drop_nulls().len() > 0
    changed = build_features(perturb_future(tables, LAST_WEEK, seed=7), LAST_WEEK, candidates, items)
    assert_frame_equal(changed.select(*KEYS, seq), base)


def test_buckets_by_customer_equal_one_pass(toy):
    tables, candidates, items = toy
    ctx = feature_context(tables, LAST_WEEK, items)
    whole = features_for(ctx, candidates)
    part = pl.col("customer_idx") % 3
    split = pl.concat([features_for(ctx, candidates.filter(part == i)) for i in range(3)]).sort(KEYS)
    assert_frame_equal(split, whole)


def test_switch_off_drops_only_the_sequence_columns(toy):
    tables, candidates, items = toy
    on = build_features(tables, LAST_WEEK, candidates, items)
    off = build_features(tables, LAST_WEEK, candidates, items, sequence=False)
    assert not any(c.startswith("seq_") for c in off.columns)
    assert_frame_equal(on.select(off.columns), off)
    plain = build_features(tables, LAST_WEEK, candidates)  # without vectors: no similarity, the rest there
    assert "seq_last_sim" not in plain.columns and "seq_ca_due" in plain.columns


def test_switch_is_in_every_featurising_assets_code_version(tmp_path):
    from hm_recsys.definitions import build_definitions
    from hm_recsys.defs.code_versions import asset_sources
    from hm_recsys.paths import DataPaths

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("ranker_features: {sequence: false}\n")
    base = asset_sources(build_definitions(DataPaths(tmp_path / "a"), eval_weeks=1, hold_failed=True))
    off = asset_sources(build_definitions(DataPaths(tmp_path / "b"), config_file=cfg, eval_weeks=1, hold_failed=True))
    changed = {name for name in base if base[name] != off[name]}
    assert changed == {"ranker_features", "ranker_hparams", "ranker_model"}
