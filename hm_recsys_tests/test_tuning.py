"""Tuning that counts with a small budget (ranking/tuning.py): TPE proposes after the startup trials, trials that
trail are pruned without changing what the others compute, and a week starts from the previous week's best
parameters, a declared input that automation builds first (defs/automation.py ``self_dependent``)."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pytest
from polars.testing import assert_frame_equal

from hm_recsys.defs.automation import rebuild
from hm_recsys.ranking.labels import training_set
from hm_recsys.ranking.ranker import DEFAULT_PARAMS, score, train_ranker
from hm_recsys.ranking.tuning import PRUNE_AFTER, clip_params, tune_ranker
from hm_recsys_tests.ranking_toy_world import LAST_WEEK, labelled_week, toy_world

SPACE = {"depth": (3, 5, False), "learning_rate": (0.05, 0.3, True), "iterations": (50, 100, False)}
# mostly hopeless: shallow trees and tiny learning rates, beside the good fixed trials (depth 6, rate 0.2-0.3)
BAD_REGION = {"depth": (1, 6, False), "learning_rate": (1e-4, 0.3, True), "iterations": (50, 50, False)}


@pytest.fixture(scope="module")
def frames():
    """Three labelled weeks, oldest last: the newest is held out."""
    tables = toy_world()
    return [labelled_week(tables, LAST_WEEK.shift(-b)) for b in range(1, 4)]


def test_clip_params_moves_parameters_onto_the_search_space():
    got = clip_params({"depth": 9, "learning_rate": 0.01, "iterations": 260, "l2_leaf_reg": 3.0}, {**SPACE, "iterations": (50, 120, False)})
    assert got == {"depth": 5, "learning_rate": 0.05, "iterations": 100}  # 120 is off the 50-step grid
    assert clip_params({"iterations": 74}, SPACE) == {"iterations": 50}


def test_tpe_proposes_after_the_startup_trials(frames):
    kwargs = dict(n_trials=3, seed=0, task_type="CPU", search_space=SPACE, start_from_defaults=False, prune=False)
    tpe = tune_ranker(frames, n_startup_trials=1, **kwargs).trials.drop("seconds")
    random = tune_ranker(frames, n_startup_trials=3, **kwargs).trials.drop("seconds")
    assert_frame_equal(tpe.head(1), random.head(1))  # the same seeded random start
    assert tpe["learning_rate"][1:].to_list() != random["learning_rate"][1:].to_list()


def test_the_watched_eval_set_does_not_change_the_trees(frames):
    train, watch = training_set(frames[1:]), training_set(frames[:1], negatives_per_group=None)
    seen = []

    class Watch:
        def after_iteration(self, info):
            seen.append(info.metrics["validation"]["MAP:top=12"][-1])
            return True

    params = {"iterations": 40, "depth": 4, "learning_rate": 0.15}
    for objective in ("YetiRank", "Logloss"):
        plain = score(train_ranker(train, params, objective, task_type="CPU"), frames[0])["score"]
        watched = train_ranker(train, params, objective, task_type="CPU", eval_frame=watch, callbacks=[Watch()], metric_period=10)
        assert np.array_equal(score(watched, frames[0])["score"].to_numpy(), plain.to_numpy()), objective
    assert len(seen) == 80 and 0 < seen[-1] <= 1


def test_trailing_trials_are_pruned_deterministically(frames):
    kwargs = dict(n_trials=4, seed=0, task_type="CPU", search_space=BAD_REGION, n_startup_trials=4,
                  warm_start={"depth": 6, "learning_rate": 0.3})
    result = tune_ranker(frames, **kwargs)
    trials = result.trials
    pruned = trials.filter(trials["state"] == "PRUNED")
    assert result.pruned == pruned.height >= 1
    assert pruned["map_at_12"].null_count() == pruned.height and (pruned["pruned_at"] >= PRUNE_AFTER).all()
    assert result.best_map == trials["map_at_12"].max()  # the best is a completed trial's true MAP@12
    assert_frame_equal(tune_ranker(frames, **kwargs).trials.drop("seconds"), trials.drop("seconds"))


def test_warm_start_is_the_first_trial_and_never_beaten_by_it(frames):
    warm = {"depth": 9, "learning_rate": 0.25, "iterations": 80, "l2_leaf_reg": 3.0}
    result = tune_ranker(frames, n_trials=3, seed=1, task_type="CPU", search_space=SPACE, warm_start=warm)
    rows = result.trials.rows(named=True)
    assert {k: rows[0][k] for k in SPACE} == {"depth": 5, "learning_rate": 0.25, "iterations": 100}
    assert {k: rows[1][k] for k in SPACE} == clip_params(DEFAULT_PARAMS, SPACE)  # then the defaults
    assert result.best_map >= rows[0]["map_at_12"]


def _ranker_hparams_node(tmp_path, config: str | None):
    from hm_recsys.definitions import build_definitions
    from hm_recsys.paths import DataPaths

    cfg = None
    if config is not None:
        cfg = tmp_path / "config.yaml"
        cfg.write_text(config)
    defs = build_definitions(DataPaths(tmp_path / "data"), config_file=cfg)
    return defs.resolve_asset_graph().get(dg.AssetKey("ranker_hparams"))


def test_ranker_hparams_reads_no_other_week_by_default(tmp_path):
    """Warm start is opt-in: by default a week's parameters do not depend on whether its previous week was built."""
    assert dg.AssetKey("ranker_hparams") not in _ranker_hparams_node(tmp_path, None).parent_keys


def test_ranker_hparams_declares_its_previous_week_when_warm_started(tmp_path):
    key = dg.AssetKey("ranker_hparams")
    node = _ranker_hparams_node(tmp_path, "ranker_hparams: {warm_start: true}\n")
    assert key in node.parent_keys
    mapping = node.assets_def.get_partition_mapping(key)
    assert (mapping.start_offset, mapping.end_offset) == (-1, -1)
    weeks = node.partitions_def
    first, second = weeks.get_partition_keys()[:2]

    def previous(week: str) -> list[str]:
        got = mapping.get_upstream_mapped_partitions_result_for_partitions(weeks.subset_with_partition_keys([week]), weeks, weeks)
        return list(got.partitions_subset.get_partition_keys())

    assert previous(second) == [first] and previous(first) == []  # the first week starts cold


WEEKS = dg.WeeklyPartitionsDefinition(start_date="2020-08-05", end_date="2020-09-30", day_offset=3)


def toy_defs(version: str) -> dg.Definitions:
    """``s`` reads its own previous week (like ranker_hparams); ``d`` reads ``s`` (like ranker_model)."""

    @dg.asset(partitions_def=WEEKS, code_version=version, automation_condition=rebuild(2, hold_failed=False, self_dependent="s"),
              deps=[dg.AssetDep("s", partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1))])
    def s():
        return dg.MaterializeResult(data_version=dg.DataVersion(version))

    @dg.asset(partitions_def=WEEKS, deps=[s], code_version="1", automation_condition=rebuild(2, hold_failed=False))
    def d():
        return dg.MaterializeResult(data_version=dg.DataVersion("d"))

    return dg.Definitions(assets=[s, d])


def _requested(defs, instance) -> dict[str, set]:
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    return {k: got for k in "sd" if (got := set(result.get_requested_partitions(dg.AssetKey(k))))}


def _run(defs, instance, wanted: dict[str, set]) -> None:
    for key in sorted(set().union(*wanted.values())):
        selection = [k for k in "sd" if key in wanted.get(k, ())]
        assert dg.materialize([*defs.assets], selection=selection, partition_key=key, instance=instance).success


def test_automation_builds_the_previous_week_first_and_an_old_week_never_blocks():
    with dg.instance_for_test() as instance:
        defs = toy_defs("1")
        _run(defs, instance, {"s": {"2020-09-02"}})  # outside the window: unsynced for good after the code change
        for version in ("1", "2"):  # fresh, then after a code change
            defs, rounds = toy_defs(version), []
            while wanted := _requested(defs, instance):
                rounds.append(wanted.get("s", set()))
                _run(defs, instance, wanted)
                assert len(rounds) < 5, rounds
            # the window's older week first (its own previous week, outside the window, is missing: no wait), then the newest
            assert [r for r in rounds if r] == [{"2020-09-16"}, {"2020-09-23"}], version
