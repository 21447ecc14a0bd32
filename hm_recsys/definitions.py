"""The one Dagster code location: ``dagster dev`` (workspace.yaml) and the CLI load ``defs`` from here."""

from __future__ import annotations

import warnings

import dagster as dg

# observable_source_asset is marked beta but is Dagster's documented way to version raw files.
warnings.filterwarnings("ignore", category=dg.BetaWarning)

from hm_recsys.defs.assets import baselines, evaluation, ranking, raw, retrieval, tables
from hm_recsys.defs.jobs import CPU_EXECUTOR, build_jobs
from hm_recsys.defs.partitions import data_date_range, target_weeks_for
from hm_recsys.defs.resources import build_resources
from hm_recsys.defs.schedules import build_schedules
from hm_recsys.paths import DataPaths

# Submission file name -> the asset that writes it; the evaluation scores each of them every week.
RECOMMENDERS = {
    "popular_all_time": "popular_all_time",
    "popular_last_week": "popular_last_week",
    "repurchase_popular": "repurchase_popular",
    "two_tower": "retrieval_candidates",
    "final": "final",
}
# Asset name -> its Config class: the CLI compares a requested config with the last run's.
ASSET_CONFIGS = {**retrieval.ASSET_CONFIGS, **ranking.ASSET_CONFIGS}


def build_definitions(paths: DataPaths | None = None) -> dg.Definitions:
    """Definitions for one data folder; its target-week partitions follow the data's own date range."""
    paths = paths or DataPaths.default()
    weeks = target_weeks_for(*data_date_range(paths.raw))
    assets = [
        *raw.build(),
        *tables.TABLE_ASSETS,
        *baselines.build(weeks),
        retrieval.image_embeddings,
        *retrieval.build(weeks),
        *ranking.build(weeks),
        evaluation.build(weeks, RECOMMENDERS),
    ]
    return dg.Definitions(
        assets=assets,
        jobs=build_jobs(weeks, ["tfrecords", *retrieval.RETRIEVAL_GPU_ASSETS]),
        schedules=build_schedules(weeks),
        resources=build_resources(paths),
        executor=CPU_EXECUTOR,
    )


defs = build_definitions()


def weekly_job() -> dg.JobDefinition:
    """Reconstructable entry point used by the CLI to run a week through the multiprocess executor."""
    return build_definitions().resolve_job_def("weekly_job")


def tables_job() -> dg.JobDefinition:
    return build_definitions().resolve_job_def("tables_job")


def images_job() -> dg.JobDefinition:
    return build_definitions().resolve_job_def("images_job")


def retrieval_job() -> dg.JobDefinition:
    return build_definitions().resolve_job_def("retrieval_job")
