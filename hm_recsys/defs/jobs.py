"""The executor and the jobs a user launches from the UI.

One executor for every launch path (``Definitions(executor=...)`` covers materializations from the
asset graph, the automation sensor and backfills): each step in its own process, two at a time. GPU
work is serialised by the instance-wide ``gpu`` pool (limit 1 on a GPU machine), not by a separate job, so it holds
however a step was launched.
"""

import dagster as dg

GPU_POOL = "gpu"
MAX_CONCURRENT = 2  # steps per run (2 cores)
EXECUTOR = dg.multiprocess_executor.configured({"max_concurrent": MAX_CONCURRENT})


def gpu_pool_limit() -> int:
    """One step at a time on the card. Without a card the pool guards nothing: it then admits as many
    steps as a run executes at once, so a week's towers need not wait for another run's CatBoost."""
    import torch

    return 1 if torch.cuda.is_available() else MAX_CONCURRENT

# A week's longest chain (shards -> towers -> fine-tuning -> top-100, ~1,500 s at full scale) starts before the
# sources and baselines that run beside it: among ready steps the executor starts the higher priority first.
CRITICAL_PATH = {"dagster/priority": "1"}


UNPARTITIONED = ["articles", "customers", "transactions", "image_embeddings"]
RANKING = dg.AssetSelection.assets("ranker_hparams", "ranker_model", "final", "evaluation")


def build_jobs(weeks: dg.PartitionsDefinition, ranking_weeks: dg.PartitionsDefinition) -> list:
    """Jobs share one partitions definition each: ``week_job`` the target weeks, ``ranking_job`` the
    ranking weeks (which start once the ranker has its training weeks)."""
    per_week = dg.AssetSelection.all() - dg.AssetSelection.groups("raw") - dg.AssetSelection.assets(*UNPARTITIONED)
    return [
        dg.define_asset_job(
            "tables_job",
            selection=dg.AssetSelection.assets(*UNPARTITIONED),
            description="Validate the raw files, (re)build the typed Parquet tables and the image embeddings.",
        ),
        dg.define_asset_job(
            "week_job",
            selection=per_week - RANKING,
            partitions_def=weeks,
            description="One target week up to the ranker's features: towers, candidates, features, baseline submissions.",
        ),
        dg.define_asset_job(
            "ranking_job",
            selection=RANKING,
            partitions_def=ranking_weeks,
            description="One ranking week: tuning, CatBoost ranker, final.csv and the MAP@12 evaluation.",
        ),
    ]
