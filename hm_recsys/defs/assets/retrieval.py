"""Retrieval stage assets: image embeddings, TFRecords, the two towers and exact top-100 candidates.

The GPU-bound ones sit in the ``gpu`` pool (one at a time across all runs) and in ``retrieval_job``,
whose executor runs one step at a time in a fresh process.
"""

from typing import Optional

import dagster as dg

from hm_recsys.defs.jobs import GPU_POOL
from hm_recsys.defs.mlflow_logging import log_curve, markdown_table
from hm_recsys.defs.resources import ComputeResource, DataResource, MlflowTracking
from hm_recsys.defs.versioning import code_version, config_metadata, data_version

GROUP = "retrieval"
TABLES = ["articles", "customers", "transactions"]
IMAGE_FILE = "image_embeddings.parquet"


class ImageEmbeddingConfig(dg.Config):
    batch_size: int = 32
    weights_path: str = ""  # a torchvision resnet50 .pth; empty = torchvision's cache or a download


class TfRecordsConfig(dg.Config):
    n_shards: int = 4
    seed: int = 0


class TwoTowerSettings(dg.Config):
    """The TFRS model's knobs (see ``retrieval.two_tower.TwoTowerConfig``). Unset ones take the device's
    preset: batch 4096 x 6 + 3 epochs on a GPU; batch 1024 x 3 + 3 on a CPU, which measured better recall
    per minute there (benchmarks/two_tower_ablation.py)."""

    output_dim: int = 32
    batch_size: Optional[int] = None
    learning_rate: float = 0.01
    epochs: Optional[int] = None
    finetune_epochs: Optional[int] = None
    finetune_learning_rate: float = 0.003
    use_images: bool = True
    seed: int = 0

    def to_config(self):
        from hm_recsys.retrieval.two_tower import TwoTowerConfig

        return TwoTowerConfig.for_device(**{k: v for k, v in self.model_dump().items() if v is not None})


class RetrievalConfig(dg.Config):
    k: int = 100


def image_embeddings_path(data: DataResource):
    return data.paths.root / "embeddings" / IMAGE_FILE


def load_image_embeddings(data: DataResource):
    import polars as pl

    return pl.read_parquet(image_embeddings_path(data))


@dg.asset(
    deps=["raw_images", "articles"],
    group_name=GROUP,
    pool=GPU_POOL,
    code_version=code_version("1", ImageEmbeddingConfig),
    kinds={"pytorch", "parquet"},
)
def image_embeddings(context: dg.AssetExecutionContext, config: ImageEmbeddingConfig, data: DataResource,
                     compute: ComputeResource) -> dg.MaterializeResult:
    """ResNet50 (global-average-pool, 2048-d) embedding of every article image; only new or changed images are embedded."""
    import polars as pl

    from hm_recsys import io
    from hm_recsys.retrieval.image_embeddings import embed_images

    path = image_embeddings_path(data)
    previous = pl.read_parquet(path) if path.exists() else None
    frame, info = embed_images(
        data.paths.images, data.tables().articles, previous=previous, weights_path=config.weights_path or None,
        batch_size=config.batch_size, device=compute.torch_device(), allow_download=True,
    )
    if info["weights"] == "random-init":
        context.log.warning("ResNet50 has NO ImageNet weights here: embeddings come from a random-init network")
    io.write_parquet(frame, path)
    return dg.MaterializeResult(
        data_version=data_version(path),
        metadata={"path": dg.MetadataValue.path(str(path)), **config_metadata(config),
                  **{k: v for k, v in info.items() if isinstance(v, (int, float, str))}},
    )


def build(weeks: dg.PartitionsDefinition) -> list:
    @dg.asset(
        partitions_def=weeks, deps=TABLES, group_name=GROUP,
        code_version=code_version("1", TfRecordsConfig), kinds={"tensorflow"},
    )
    def tfrecords(context: dg.AssetExecutionContext, config: TfRecordsConfig, data: DataResource) -> dg.MaterializeResult:
        """The 365-day training and 30-day fine-tuning windows before the week, as sharded tf.train.Example files."""
        from hm_recsys.retrieval.tfrecords import write_tfrecords
        from hm_recsys.weeks import TargetWeek

        out = data.paths.week_dir("tfrecords", context.partition_key)
        manifest = write_tfrecords(data.tables(), TargetWeek.from_key(context.partition_key), out,
                                   n_shards=config.n_shards, seed=config.seed)
        windows = [{"window": w, **{k: v for k, v in stats.items() if isinstance(v, (int, float, str))}}
                   for w, stats in manifest["windows"].items()]
        return dg.MaterializeResult(
            data_version=data_version(out),
            metadata={"path": dg.MetadataValue.path(str(out)), "windows": markdown_table(windows), **config_metadata(config)},
        )

    def _train_metadata(history: list[dict] | dict, out) -> dict:
        hist = history if isinstance(history, dict) else history[-1]
        losses = [float(x) for x in hist.get("loss", [])]
        return {
            "path": dg.MetadataValue.path(str(out)),
            "loss_by_epoch": dg.MetadataValue.json(losses),
            "final_loss": losses[-1] if losses else float("nan"),
            "examples": int(hist.get("n_examples", 0)),
            "seconds": float(hist.get("seconds", 0.0)),
            "device": str(hist.get("device", "")),
        }

    @dg.asset(
        partitions_def=weeks, deps=[tfrecords, image_embeddings], group_name=GROUP, pool=GPU_POOL,
        code_version=code_version("1", TwoTowerSettings), kinds={"tensorflow"},
    )
    def two_tower_model(context: dg.AssetExecutionContext, config: TwoTowerSettings, data: DataResource,
                        mlflow: MlflowTracking) -> dg.MaterializeResult:
        """TFRS two-tower (in-batch softmax) trained on the 365 days before the week."""
        import mlflow as mlf

        from hm_recsys.retrieval.two_tower import train

        key = context.partition_key
        out = data.paths.week_dir("models", key) / "two_tower"
        history = train(data.paths.week_dir("tfrecords", key), out, config.to_config(),
                        image_embeddings=load_image_embeddings(data) if config.use_images else None)
        with mlflow.run(context) as run_id:
            mlf.log_params({f"two_tower.{k}": v for k, v in config.model_dump().items()})
            log_curve("two_tower_train", history)
        return dg.MaterializeResult(data_version=data_version(out), metadata=_train_metadata(history, out) | {"mlflow_run_id": run_id} | config_metadata(config))

    @dg.asset(
        partitions_def=weeks, deps=[two_tower_model], group_name=GROUP, pool=GPU_POOL,
        code_version=code_version("1", TwoTowerSettings), kinds={"tensorflow"},
    )
    def two_tower_finetuned(context: dg.AssetExecutionContext, config: TwoTowerSettings, data: DataResource,
                            mlflow: MlflowTracking) -> dg.MaterializeResult:
        """The two-tower model fine-tuned on the last 30 days before the week."""
        import mlflow as mlf

        from hm_recsys.retrieval.two_tower import finetune

        key = context.partition_key
        models = data.paths.week_dir("models", key)
        out = models / "two_tower_finetuned"
        history = finetune(data.paths.week_dir("tfrecords", key), models / "two_tower", out, config.to_config())
        with mlflow.run(context) as run_id:
            log_curve("two_tower_finetune", history)
            mlf.log_artifacts(str(out), artifact_path=f"two_tower/{key}")
        return dg.MaterializeResult(data_version=data_version(out), metadata=_train_metadata(history, out) | {"mlflow_run_id": run_id} | config_metadata(config))

    @dg.asset(
        partitions_def=weeks, deps=[two_tower_finetuned, *TABLES], group_name=GROUP, pool=GPU_POOL,
        code_version=code_version("1", RetrievalConfig), kinds={"tensorflow", "parquet"},
    )
    def retrieval_candidates(context: dg.AssetExecutionContext, config: RetrievalConfig, data: DataResource,
                             compute: ComputeResource, mlflow: MlflowTracking) -> dg.MaterializeResult:
        """Exact brute-force top-100 articles per customer from the fine-tuned towers; also ``two_tower.csv``."""
        import mlflow as mlf
        import polars as pl

        from hm_recsys import io, metrics
        from hm_recsys.candidates.popular import best_sellers
        from hm_recsys.defs.assets.baselines import write_recommender_submission
        from hm_recsys.retrieval.brute_force import retrieve
        from hm_recsys.retrieval.cold_start import cold_start_recall
        from hm_recsys.weeks import TargetWeek, labels

        key = context.partition_key
        week = TargetWeek.from_key(key)
        cands, timing = retrieve(data.paths.week_dir("models", key) / "two_tower_finetuned",
                                 data.paths.week_dir("tfrecords", key), k=config.k, device=compute.torch_device())
        path = io.write_parquet(cands, data.paths.week_dir("candidates", key) / "two_tower.parquet")
        tables = data.tables()
        write_recommender_submission(data, key, "two_tower", cands.filter(pl.col("rank") < metrics.K), tables)
        meta = {"path": dg.MetadataValue.path(str(path)), "rows": cands.height, **config_metadata(config),
                **{f"timing/{k}": v for k, v in timing.items() if isinstance(v, (int, float, str))}}
        truth = labels(tables.transactions, week)
        if truth.height:
            buyers = truth.select("customer_idx").unique()
            popular = buyers.join(best_sellers(tables, week, days=7, top_n=config.k).select("article_idx"), how="cross")
            recall = {
                f"recall@{config.k}/two_tower": metrics.recall_at_k(cands, truth, config.k),
                f"recall@{config.k}/last_week_popular": metrics.recall(popular, truth),
            }
            cold = cold_start_recall(cands, tables, week, k=config.k)
            meta |= recall | {f"cold_start/{k}": v for k, v in cold.items() if isinstance(v, (int, float))}
            with mlflow.run(context):
                mlf.log_metrics({k.replace("@", "_at_").replace("/", "_"): float(v) for k, v in meta.items()
                                 if k.startswith(("recall", "cold_start")) and isinstance(v, (int, float))})
        return dg.MaterializeResult(data_version=data_version(path, data.paths.submission(key, "two_tower")), metadata=meta)

    return [tfrecords, two_tower_model, two_tower_finetuned, retrieval_candidates]


ASSET_CONFIGS = {
    "image_embeddings": ImageEmbeddingConfig,
    "tfrecords": TfRecordsConfig,
    "two_tower_model": TwoTowerSettings,
    "two_tower_finetuned": TwoTowerSettings,
    "retrieval_candidates": RetrievalConfig,
}
RETRIEVAL_GPU_ASSETS = ["two_tower_model", "two_tower_finetuned", "retrieval_candidates"]
