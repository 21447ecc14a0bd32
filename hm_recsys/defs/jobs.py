"""Jobs: one per concern. GPU-bound assets also get a job of their own whose executor runs one step
at a time in a fresh process (CUDA-safe), on top of the instance-wide ``gpu`` pool limit of 1."""

from __future__ import annotations

import dagster as dg

CPU_EXECUTOR = dg.multiprocess_executor.configured({"max_concurrent": 2})
GPU_EXECUTOR = dg.multiprocess_executor.configured({"max_concurrent": 1, "start_method": {"spawn": {}}})

GPU_POOL = "gpu"


def build_jobs(weeks: dg.PartitionsDefinition, gpu_assets: list[str]) -> list:
    weekly = dg.AssetSelection.all() - dg.AssetSelection.groups("raw", "tables") - dg.AssetSelection.assets(*_unpartitioned_gpu(gpu_assets))
    jobs = [
        dg.define_asset_job(
            "tables_job",
            selection=dg.AssetSelection.groups("raw", "tables"),
            description="Validate the raw files and (re)build the typed Parquet tables.",
            executor_def=CPU_EXECUTOR,
        ),
        dg.define_asset_job(
            "weekly_job",
            selection=weekly,
            partitions_def=weeks,
            description="Everything for one target week: candidates, models, submissions, evaluation.",
            executor_def=CPU_EXECUTOR,
        ),
    ]
    if gpu_assets:
        jobs.append(
            dg.define_asset_job(
                "gpu_job",
                selection=dg.AssetSelection.assets(*gpu_assets),
                description="The GPU-bound assets only, one step at a time in fresh processes.",
                executor_def=GPU_EXECUTOR,
            )
        )
    return jobs


def _unpartitioned_gpu(gpu_assets: list[str]) -> list[str]:
    return [a for a in gpu_assets if a == "image_embeddings"]
