"""Jobs: one per concern. GPU-bound assets get jobs of their own whose executor runs one step at a
time in a fresh (spawned, CUDA-safe) process; on top of that the instance-wide ``gpu`` pool (limit 1,
dagster.yaml) keeps two GPU steps of any runs off the card at once, while CPU steps go on in parallel."""

import dagster as dg

CPU_EXECUTOR = dg.multiprocess_executor.configured({"max_concurrent": 2})
GPU_EXECUTOR = dg.multiprocess_executor.configured({"max_concurrent": 1, "start_method": {"spawn": {}}})

GPU_POOL = "gpu"


def build_jobs(weeks: dg.PartitionsDefinition, retrieval_assets: list[str]) -> list:
    partitioned = dg.AssetSelection.all() - dg.AssetSelection.groups("raw", "tables") - dg.AssetSelection.assets("image_embeddings")
    return [
        dg.define_asset_job(
            "tables_job",
            selection=dg.AssetSelection.groups("tables"),
            description="Validate the raw files and (re)build the typed Parquet tables.",
            executor_def=CPU_EXECUTOR,
        ),
        dg.define_asset_job(
            "images_job",
            selection=dg.AssetSelection.assets("image_embeddings"),
            description="ResNet50 embeddings of new or changed article images (GPU executor).",
            executor_def=GPU_EXECUTOR,
        ),
        dg.define_asset_job(
            "retrieval_job",
            selection=dg.AssetSelection.assets(*retrieval_assets),
            partitions_def=weeks,
            description="One week's TFRecords, two-tower training, fine-tuning and top-100 retrieval (GPU executor).",
            executor_def=GPU_EXECUTOR,
        ),
        dg.define_asset_job(
            "weekly_job",
            selection=partitioned,
            partitions_def=weeks,
            description="Everything for one target week: candidates, models, submissions, evaluation.",
            executor_def=CPU_EXECUTOR,
        ),
    ]
