"""Retrieval stage assets: image embeddings, TFRecords, the two towers and exact top-100 candidates.

Every step that may use the GPU sits in the ``gpu`` pool (limit 1 where there is a card, set explicitly on the
instance), so two of them never share it whichever run, schedule, sensor or backfill launched them; the
multiprocess executor runs each step in its own process.
"""

import dagster as dg

from hm_recsys import schema
from hm_recsys.defs import checks
from hm_recsys.defs.assets.history import TABLES
from hm_recsys.defs.jobs import CPU_TAGS, CRITICAL_PATH, GPU_POOL, GPU_TAGS
from hm_recsys.defs.mlflow_logging import log_curve, markdown_table
from hm_recsys.defs.resources import ComputeResource, DataResource, MlflowTracking
from hm_recsys.defs.versioning import code_version, config_metadata, data_version

GROUP = "retrieval"


def image_embeddings_path(data: DataResource):
    return data.paths.root / "embeddings" / "image_embeddings.parquet"


def load_image_embeddings(data: DataResource):
    import polars as pl

    return pl.read_parquet(image_embeddings_path(data))


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


def build_images(configs: dict, automation: dg.AutomationCondition) -> dg.AssetsDefinition:
    ImageEmbeddingConfig = configs["image_embeddings"]

    @dg.asset(
        deps=["raw_images", "articles"], group_name=GROUP, pool=GPU_POOL, op_tags=GPU_TAGS, automation_condition=automation,
        code_version=code_version("5", ImageEmbeddingConfig), kinds={"pytorch", "parquet"},
    )
    def image_embeddings(context: dg.AssetExecutionContext, config: ImageEmbeddingConfig, data: DataResource,
                         compute: ComputeResource) -> dg.MaterializeResult:
        """ResNet50 2048-d embedding of every article image; only new or changed images are embedded."""
        import polars as pl

        from hm_recsys import io
        from hm_recsys.retrieval.image_embeddings import embed_images

        path = image_embeddings_path(data)
        previous = pl.read_parquet(path) if path.exists() else None
        articles = pl.read_parquet(data.paths.tables / schema.ARTICLES_TABLE)  # its only table input
        frame, info = embed_images(
            data.paths.images, articles, previous=previous, weights_path=config.weights_path or None,
            batch_size=config.batch_size, device=compute.torch_device(), allow_download=True,
            max_side=config.max_side,
        )
        if info["weights"] == "random-init":
            context.log.warning("ResNet50 has NO ImageNet weights here: embeddings come from a random-init network")
        if info.get("n_corrupt"):
            context.log.warning(f"{info['n_corrupt']} image(s) could not be decoded and take the no-image path: "
                                f"{info['corrupt_images'][:20]}")
        io.write_parquet(frame, path)
        return dg.MaterializeResult(
            data_version=data_version(path),
            metadata={"path": dg.MetadataValue.path(str(path)), **config_metadata(config),
                      **{k: v for k, v in info.items() if isinstance(v, (int, float, str))},
                      "corrupt_images": dg.MetadataValue.json(list(info.get("corrupt_images", [])))},
        )

    return image_embeddings


def build(weeks: dg.PartitionsDefinition, configs: dict, automation: dg.AutomationCondition) -> list:
    TfRecordsConfig, TwoTowerSettings, RetrievalConfig = configs["tfrecords"], configs["two_tower"], configs["retrieval_candidates"]
    common = dict(partitions_def=weeks, group_name=GROUP, automation_condition=automation)
    cpu, gpu = {**CRITICAL_PATH, **CPU_TAGS}, {**CRITICAL_PATH, **GPU_TAGS}

    @dg.asset(deps=TABLES, code_version=code_version("4", TfRecordsConfig), kinds={"tensorflow"}, op_tags=cpu, **common)
    def tfrecords(context: dg.AssetExecutionContext, config: TfRecordsConfig, data: DataResource) -> dg.MaterializeResult:
        """The 52 weeks before the week as weekly tf.train.Example shards (each written once, reused by later weeks)."""
        from hm_recsys.retrieval.tfrecords import write_weekly_window
        from hm_recsys.weeks import TargetWeek

        out = data.paths.week_dir("tfrecords", context.partition_key)
        before = set(data.paths.shards.glob("*/*"))
        manifest = write_weekly_window(data.tables(), TargetWeek.from_key(context.partition_key), data.paths.shards, out,
                                       n_shards=config.n_shards, seed=config.seed)
        written = len(set(data.paths.shards.glob("*/*")) - before)
        windows = [{"window": w, **{k: v for k, v in stats.items() if isinstance(v, (int, float, str))}}
                   for w, stats in manifest["windows"].items()]
        return dg.MaterializeResult(
            data_version=data_version(out),
            metadata={"path": dg.MetadataValue.path(str(out)), "windows": markdown_table(windows),
                      "shards_written": written, "shards_reused": len(manifest["shard_dirs"]) - written,
                      **config_metadata(config)},
        )

    @dg.asset(deps=[tfrecords, "image_embeddings"], pool=GPU_POOL, code_version=code_version("4", TwoTowerSettings),
              kinds={"tensorflow"}, op_tags=gpu, **common)
    def two_tower_model(context: dg.AssetExecutionContext, config: TwoTowerSettings, data: DataResource,
                        mlflow: MlflowTracking) -> dg.MaterializeResult:
        """TFRS two-tower (in-batch softmax): last week's towers trained on the new week (from scratch on 52 weeks every 4th week)."""
        import json
        import shutil

        import mlflow as mlf

        from hm_recsys import io
        from hm_recsys.retrieval.tfrecords import load_manifest
        from hm_recsys.retrieval.tower_chain import train_chain
        from hm_recsys.retrieval.two_tower import HISTORY, train
        from hm_recsys.weeks import TargetWeek

        key = context.partition_key
        out = data.paths.week_dir("models", key) / "two_tower"
        images = load_image_embeddings(data) if config.use_images else None
        links = []
        if config.warm_start:  # the links' shards are written as this week's were
            written = load_manifest(data.paths.week_dir("tfrecords", key))
            link, links = train_chain(data.tables(), TargetWeek.from_key(key), data.paths.shards, data.paths.tower_chain,
                                      config.to_config(), images, n_shards=written["n_shards"], seed=written["seed"],
                                      say=context.log.info)
            with io.atomic_path(out) as tmp:
                shutil.copytree(link, tmp)
            history = json.loads((out / HISTORY).read_text())[-1]
        else:
            history = train(data.paths.week_dir("tfrecords", key), out, config.to_config(), image_embeddings=images)
        with mlflow.run(context) as run_id:
            mlf.log_params({f"two_tower.{k}": v for k, v in config.model_dump().items()})
            log_curve("two_tower_train", history)
        chain = {"chain": markdown_table(links), "links_trained": sum(not r["reused"] for r in links)} if links else {}
        return dg.MaterializeResult(data_version=data_version(out),
                                    metadata=_train_metadata(history, out) | chain | {"mlflow_run_id": run_id} | config_metadata(config))

    # tfrecords: fine-tuning reads the week's manifest (its last 4 weekly shards). The chain link it starts
    # from is keyed by content and recomputed from the tables, so a rewritten manifest can leave the link the
    # same bytes: without this dep the fine-tune would keep a stale manifest's window.
    @dg.asset(deps=[two_tower_model, tfrecords, "image_embeddings"], pool=GPU_POOL, code_version=code_version("2", TwoTowerSettings),
              kinds={"tensorflow"}, op_tags=gpu, **common)
    def two_tower_finetuned(context: dg.AssetExecutionContext, config: TwoTowerSettings, data: DataResource,
                            mlflow: MlflowTracking) -> dg.MaterializeResult:
        """The two-tower model fine-tuned on the last 4 weeks before the week."""
        import mlflow as mlf

        from hm_recsys.retrieval.two_tower import finetune

        key = context.partition_key
        models = data.paths.week_dir("models", key)
        out = models / "two_tower_finetuned"
        history = finetune(data.paths.week_dir("tfrecords", key), models / "two_tower", out, config.to_config(),
                           image_embeddings=load_image_embeddings(data) if config.use_images else None)
        with mlflow.run(context) as run_id:
            log_curve("two_tower_finetune", history)
            mlf.log_artifacts(str(out), artifact_path=f"two_tower/{key}")
        return dg.MaterializeResult(data_version=data_version(out),
                                    metadata=_train_metadata(history, out) | {"mlflow_run_id": run_id} | config_metadata(config))

    @dg.asset(
        deps=[two_tower_finetuned, tfrecords, "image_embeddings", *TABLES], pool=GPU_POOL,  # tfrecords: the serving features
        code_version=code_version("3", RetrievalConfig),
        kinds={"tensorflow", "parquet"}, op_tags=gpu, **common,
        # No label is read here: the recall against the week's purchases (and its floor check) is the evaluation's,
        # which declares the transactions, so it is recomputed when the week's purchases arrive.
        check_specs=[checks.contract_spec("retrieval_candidates"), checks.submission_spec("retrieval_candidates")],
    )
    def retrieval_candidates(context: dg.AssetExecutionContext, config: RetrievalConfig, data: DataResource,
                             compute: ComputeResource) -> dg.MaterializeResult:
        """Exact brute-force top-100 articles per customer from the fine-tuned towers; also the two_tower.csv submission."""
        import time

        import polars as pl

        from hm_recsys import io, metrics
        from hm_recsys.defs.assets.baselines import write_recommender_submission
        from hm_recsys.retrieval.brute_force import CANDIDATE_SCHEMA, retrieval_parts

        key = context.partition_key
        tables = data.tables()
        timing, parts = retrieval_parts(data.paths.week_dir("models", key) / "two_tower_finetuned",
                                        data.paths.week_dir("tfrecords", key), k=config.k, device=compute.torch_device(),
                                        image_embeddings=load_image_embeddings(data))
        path = data.paths.week_dir("candidates", key) / "two_tower.parquet"
        t0, rows, top, contract = time.perf_counter(), 0, [pl.DataFrame(schema=CANDIDATE_SCHEMA)], []
        with io.parquet_parts(path, CANDIDATE_SCHEMA) as write:  # a part's customers are in no other part
            for part in parts:
                write(part)
                rows += part.height
                top.append(part.filter(pl.col("rank") < metrics.K))
                contract.append(checks.check_contract(part, "two_tower", tables))
        timing["top_k_seconds"] = round(time.perf_counter() - t0, 3)
        sub = write_recommender_submission(data, key, "two_tower", pl.concat(top), tables)
        meta = {"path": dg.MetadataValue.path(str(path)), "rows": rows, **config_metadata(config),
                **{f"timing/{k}": v for k, v in timing.items() if isinstance(v, (int, float, str))}}
        return dg.MaterializeResult(
            data_version=data_version(path, data.paths.submission(key, "two_tower")), metadata=meta,
            check_results=checks.for_week([checks.contract_of_parts(contract, rows), *sub.check_results], key),
        )

    return [tfrecords, two_tower_model, two_tower_finetuned, retrieval_candidates]


GPU_ASSETS = ["image_embeddings", "two_tower_model", "two_tower_finetuned", "retrieval_candidates"]
