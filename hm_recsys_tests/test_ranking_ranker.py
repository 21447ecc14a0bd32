"""CatBoost ranker on the toy world: learns something, is deterministic, top-k and the final fill are well formed."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from hm_recsys import metrics, weeks
from hm_recsys.ranking import (
    feature_importance,
    load_model,
    recommend,
    save_model,
    score,
    top_k,
    train_ranker,
    training_set,
    tune_ranker,
)
from hm_recsys_tests.ranking_toy_world import LAST_WEEK, labelled_week, toy_world

SMALL = {"iterations": 60, "depth": 4, "learning_rate": 0.15}


@pytest.fixture(scope="module")
def tables():
    return toy_world()


@pytest.fixture(scope="module")
def frames(tables) -> list[pl.DataFrame]:
    """Target week first, then three training weeks."""
    return [labelled_week(tables, LAST_WEEK.shift(-b)) for b in range(4)]


@pytest.fixture(scope="module")
def model(frames):
    return train_ranker(training_set(frames[1:]), SMALL, seed=0, task_type="CPU")


def test_ranker_beats_random_order(tables, frames, model):
    target = frames[0]
    truth = weeks.labels(tables.transactions, LAST_WEEK)
    ranked = metrics.map_at_k(top_k(score(model, target)), truth)
    rng = np.random.default_rng(0)
    random_maps = [
        metrics.map_at_k(top_k(target.with_columns(score=pl.Series(rng.random(target.height)))), truth)
        for _ in range(3)
    ]
    assert ranked > 1.5 * max(random_maps), (ranked, random_maps)


def test_training_is_deterministic(frames, model):
    again = train_ranker(training_set(frames[1:]), SMALL, seed=0, task_type="CPU")
    assert_frame_equal(score(again, frames[0]), score(model, frames[0]))


def test_pointwise_classifier_option(frames):
    clf = train_ranker(
        training_set(frames[1:], drop_groups_without_positive=False), SMALL, objective="Logloss", task_type="CPU"
    )
    scored = score(clf, frames[0])
    assert scored["score"].dtype == pl.Float32 and scored["score"].n_unique() > 10


def test_top_k_gives_distinct_articles_in_rank_order(frames, model):
    scored = score(model, frames[0])
    top = top_k(scored, k=12)
    assert top.columns == ["customer_idx", "article_idx", "rank"]
    per = top.group_by("customer_idx").agg(pl.len(), pl.col("article_idx").n_unique().alias("distinct"),
                                           pl.col("rank").sort())
    n_candidates = scored.group_by("customer_idx").len().rename({"len": "n_cand"})
    per = per.join(n_candidates, on="customer_idx")
    assert (per["len"] == per["distinct"]).all()
    assert (per["len"] == per["n_cand"].clip(upper_bound=12)).all()
    assert all(r == list(range(len(r))) for r in per["rank"].to_list())
    best = scored.sort("score", descending=True).group_by("customer_idx", maintain_order=True).first()
    first = top.filter(pl.col("rank") == 0).join(best, on="customer_idx")
    assert (first["article_idx"] == first["article_idx_right"]).all()


def test_recommend_fills_every_customer_to_twelve(tables, frames, model):
    popular = list(range(20))
    recs = recommend(model, frames[0], popular, tables.n_customers)
    counts = recs.group_by("customer_idx").agg(pl.len(), pl.col("article_idx").n_unique().alias("distinct"))
    assert counts.height == tables.n_customers
    assert counts["len"].unique().to_list() == [12] and counts["distinct"].unique().to_list() == [12]
    ranked = top_k(score(model, frames[0]))
    joined = ranked.join(recs, on=["customer_idx", "rank"], how="left", suffix="_final")
    assert (joined["article_idx"] == joined["article_idx_final"]).all()  # the ranker's picks come first

def test_save_load_and_importance(tmp_path, frames, model):
    path = save_model(model, tmp_path / "ranker.cbm")
    loaded = load_model(path)
    assert_frame_equal(score(loaded, frames[0]), score(model, frames[0]))
    imp = feature_importance(model)
    assert imp.columns == ["feature", "importance"]
    assert imp.height == len(model.feature_names_)
    assert imp["importance"].sum() == pytest.approx(100, rel=1e-3)
    with pytest.raises(FileNotFoundError, match="ranker model file not found"):
        load_model(tmp_path / "missing.cbm")


def test_the_same_model_trained_twice_is_the_same_file(tmp_path, frames, model):
    """No finish time or random guid in the file: the same training gives the same bytes (data version)."""
    import time

    time.sleep(1.1)  # a finish time in seconds would differ
    again = train_ranker(training_set(frames[1:]), SMALL, seed=0, task_type="CPU")
    a, b = save_model(model, tmp_path / "a.cbm"), save_model(again, tmp_path / "b.cbm")
    assert a.read_bytes() == b.read_bytes()
    assert load_model(a).get_metadata()["model_guid"] != ""


def test_train_rejects_bad_input(frames):
    train = training_set(frames[1:])
    with pytest.raises(ValueError, match="objective must be"):
        train_ranker(train, SMALL, objective="RMSE", task_type="CPU")
    with pytest.raises(ValueError, match="objective must be"):
        train_ranker(train, SMALL, objective="RMSE:permutations=1", task_type="CPU")
    with pytest.raises(ValueError, match="only"):
        train_ranker(train.filter(pl.col("label") == 1), SMALL, task_type="CPU")
    with pytest.raises(ValueError, match="'group_id' missing"):
        train_ranker(train.drop("group_id"), SMALL, task_type="CPU")


def test_tuning_picks_the_best_trial_deterministically(tables, frames):
    space = {"depth": (3, 5, False), "learning_rate": (0.05, 0.3, True), "l2_leaf_reg": (1.0, 10.0, True),
             "iterations": (50, 100, False)}
    newest = frames[1]["week_start"][0]
    purchases = weeks.labels(tables.transactions, weeks.TargetWeek(newest))
    kwargs = dict(n_trials=2, seed=3, task_type="CPU", search_space=space, valid_purchases=purchases)
    result = tune_ranker(frames[1:], **kwargs)
    assert result.trials.height == 2
    assert result.trials.columns[:4] == ["number", "state", "map_at_12", "seconds"]
    assert result.best_map == pytest.approx(result.trials["map_at_12"].max())
    assert set(result.best_params) == set(space)
    assert 3 <= result.best_params["depth"] <= 5 and result.best_params["iterations"] in (50, 100)
    again = tune_ranker(frames[1:], **kwargs)
    assert_frame_equal(again.trials.drop("seconds"), result.trials.drop("seconds"))
    with pytest.raises(ValueError, match="at least 2 labelled weeks"):
        tune_ranker(frames[1:2], **kwargs)


def test_ranking_in_customer_chunks_matches_one_pass(tables, frames, model):
    from hm_recsys.candidates import run_sources, union_candidates
    from hm_recsys.ranking import build_features, rank_in_chunks

    some = frames[0]["customer_idx"].unique().sort().head(40)
    union = union_candidates(run_sources(tables, LAST_WEEK, some, params={"als": {"factors": 16, "iterations": 5}}))
    whole = top_k(score(model, build_features(tables, LAST_WEEK, union)))
    assert_frame_equal(rank_in_chunks(model, tables, LAST_WEEK, union, chunk_customers=7), whole)


def test_tuning_starts_from_the_default_parameters(frames):
    from hm_recsys.ranking.ranker import DEFAULT_PARAMS

    space = {"depth": (3, 5, False), "learning_rate": (0.05, 0.3, True), "iterations": (50, 100, False)}
    result = tune_ranker(frames[1:3], n_trials=1, seed=0, task_type="CPU", search_space=space)
    first = result.trials.row(0, named=True)
    assert first["depth"] == 5 and first["iterations"] == 100  # defaults 6 and 150, clipped into the space
    assert first["learning_rate"] == pytest.approx(DEFAULT_PARAMS["learning_rate"])


def test_yetirank_permutations_are_passed_to_catboost(frames, model):
    """The loss string's parameters reach CatBoost: one permutation trains a different model from the default ten."""
    train = training_set(frames[1:])
    one = train_ranker(train, SMALL, objective="YetiRank:permutations=1", task_type="CPU")
    assert one.get_all_params()["loss_function"] == "YetiRank:permutations=1"
    x = train.select(one.feature_names_).to_numpy()
    assert not np.allclose(one.predict(x), model.predict(x))
