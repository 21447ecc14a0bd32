"""The profiler runs on any Kaggle-schema folder and reports every statistic against the real figures."""

from __future__ import annotations

import math
import shutil

import polars as pl
import pytest

from hm_recsys import schema
from hm_recsys.synth import format_profile, generate_world, profile_dataset
from hm_recsys.synth.profile import REFERENCE, map_at_k


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return generate_world(tmp_path_factory.mktemp("world"), "tiny", seed=0, images=False)


def test_profile_returns_every_statistic(raw):
    stats = profile_dataset(raw)
    assert set(REFERENCE) <= set(stats)
    assert all(math.isfinite(stats[k]) for k in REFERENCE)
    assert stats["last_day"] == "2020-09-22"
    assert stats["n_customers"] == 2_000 and stats["n_articles"] == 500
    assert 0 < stats["recall_repurchase"] < 1 and 0 < stats["map12_repurchase_then_popular"] < 1
    assert 0.6 < stats["channel2_share"] < 0.8


def test_format_profile_prints_real_figures_and_flags(raw):
    text = format_profile(profile_dataset(raw))
    for ref in REFERENCE.values():
        assert ref.label in text
    assert "real H&M" in text and "in band" in text and "banded statistics in band" in text
    assert "31,788,324" in text


def test_map_at_k_matches_hand_computation():
    truth = pl.DataFrame({"cust": [1, 1, 2], "art": [10, 11, 20]})
    pred = pl.DataFrame({"cust": [1, 1, 1, 2, 2], "art": [10, 99, 11, 98, 97], "rank": [0, 1, 2, 0, 1]})
    # customer 1: hits at ranks 1 and 3 -> (1/1 + 2/3) / 2; customer 2: no hit
    assert map_at_k(pred, truth) == pytest.approx(((1 + 2 / 3) / 2 + 0) / 2)


def test_bad_input_names_file_and_columns(raw, tmp_path):
    broken = tmp_path / "raw"
    shutil.copytree(raw, broken)
    (broken / schema.CUSTOMERS_CSV).unlink()
    with pytest.raises(FileNotFoundError, match="customers.csv"):
        profile_dataset(broken)
    shutil.copy(raw / schema.CUSTOMERS_CSV, broken / schema.CUSTOMERS_CSV)
    text = (broken / schema.ARTICLES_CSV).read_text().replace("product_code", "productcode", 1)
    (broken / schema.ARTICLES_CSV).write_text(text)
    with pytest.raises(ValueError, match="articles.csv.*productcode"):
        profile_dataset(broken)
