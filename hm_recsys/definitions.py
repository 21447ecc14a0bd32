"""The one Dagster code location: ``dagster dev`` (workspace.yaml) and the CLI load ``defs`` from here."""

from __future__ import annotations

import warnings

import dagster as dg

# observable_source_asset and custom automation conditions are marked beta/preview but are Dagster's
# documented way to version raw files and to express "unsynced".
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

from hm_recsys.defs import automation, config  # noqa: E402
from hm_recsys.defs.assets import baselines, evaluation, history, ranking, raw, retrieval, serving, tables  # noqa: E402
from hm_recsys.defs.jobs import EXECUTOR, build_jobs  # noqa: E402
from hm_recsys.defs.partitions import data_date_range, ranking_weeks_for, target_weeks_for  # noqa: E402
from hm_recsys.defs.resources import build_resources  # noqa: E402
from hm_recsys.defs.schedules import build_schedules  # noqa: E402
from hm_recsys.defs.sensors import build_raw_files_sensor, loaded_state  # noqa: E402
from hm_recsys.paths import DataPaths  # noqa: E402

# Submission file name -> the asset that writes it; the evaluation scores each of them every week.
RECOMMENDERS = {
    "popular_all_time": "popular_all_time",
    "popular_last_week": "popular_last_week",
    "repurchase_popular": "repurchase_popular",
    "two_tower": "retrieval_candidates",
    "final": "final",
}


def build_definitions(paths: DataPaths | None = None, *, config_file=None, eval_weeks: int | None = None,
                      hold_failed: bool | None = None) -> dg.Definitions:
    """Definitions for one data folder: partitions follow its data, config defaults follow its config file.

    ``eval_weeks``: how many labelled weeks automation keeps scored besides the production week;
    it and ``hold_failed`` default to the environment's ``automation.settings``.
    """
    paths = paths or DataPaths.default()
    config_path = config.config_path(paths.root, config_file)
    configs = config.resolve(paths.root, config_path)
    date_range = data_date_range(paths.raw)
    weeks, ranking_weeks = target_weeks_for(*date_range), ranking_weeks_for(*date_range)
    env = automation.settings()
    eval_weeks = env["eval_weeks"] if eval_weeks is None else eval_weeks
    hold_failed = env["hold_failed"] if hold_failed is None else hold_failed
    auto = automation.conditions(eval_weeks, hold_failed=hold_failed)
    resources = build_resources(paths)
    assets = [
        *raw.build(),
        *tables.build(auto["unpartitioned"]),
        history.build(weeks, auto["upstream"]),
        *baselines.build(weeks, auto["scored"]),
        retrieval.build_images(configs, auto["unpartitioned"]),
        *retrieval.build(weeks, configs, auto["upstream"]),
        *ranking.build(weeks, ranking_weeks, configs, auto["upstream"], auto["scored"], auto["tuning"]),
        evaluation.build(ranking_weeks, RECOMMENDERS, auto["scored"]),
        serving.build(ranking_weeks, auto["unpartitioned"]),  # a one-week window: the production week only
    ]
    return dg.Definitions(
        assets=assets,
        jobs=build_jobs(weeks, ranking_weeks),
        schedules=build_schedules(weeks),
        sensors=[*automation.automation_sensors(env["interval_s"]),
                 build_raw_files_sensor(loaded_state(resources["data"], config_path), config_path)],
        resources=resources,
        executor=EXECUTOR,
    )


defs = build_definitions()
