"""Ranking stage assets: candidate sources, their union, ranker features, Optuna-tuned CatBoost, final.

The ranker for week W learns from weeks W-k..W-1, each a partition of the same ``ranker_features``
asset built as of its own cutoff and labelled by its own purchases; nothing from W or later enters.
That dependency is a partition mapping, so Dagster itself builds the training weeks first (automation
and backfills order partitions by it), and the ranking assets start k weeks after the first target
week so that every ranking partition has its training weeks.
"""

import inspect

import dagster as dg

from hm_recsys.defs import checks
from hm_recsys.defs.jobs import GPU_POOL
from hm_recsys.defs.mlflow_logging import markdown_table, png_markdown
from hm_recsys.defs.partitions import TRAIN_WEEKS
from hm_recsys.defs.resources import ComputeResource, DataResource, MlflowTracking
from hm_recsys.defs.versioning import code_version, config_metadata, data_version, dict_hash

GROUP = "ranking"
TABLES = ["history"]  # the transactions before the week, with the masters (see history.py)
FEATURES = "ranker_features"


class MissingUpstream(FileNotFoundError):
    """An input partition that was never materialized: names the asset and partition to build."""


def _defaults_version(fn) -> str:
    """A source's code version follows its keyword defaults, so changing a default re-runs it."""
    defaults = {k: repr(p.default) for k, p in inspect.signature(fn).parameters.items() if p.default is not inspect.Parameter.empty}
    return dict_hash(defaults)


def _source_metadata(frame, tables, week) -> dict:
    from hm_recsys import metrics
    from hm_recsys.weeks import labels

    per_customer = frame.group_by("customer_idx").len()
    meta = {"rows": frame.height, "customers": per_customer.height,
            "mean_per_customer": float(per_customer["len"].mean() or 0.0)}
    truth = labels(tables.transactions, week)
    if truth.height:
        buyers = truth.select("customer_idx").unique()
        on_buyers = frame.join(buyers, on="customer_idx", how="semi")
        meta |= {"recall": metrics.recall(on_buyers, truth), "candidates_for_buyers": on_buyers.height}
    return meta


def _candidates_path(data: DataResource, key: str, name: str):
    return data.paths.week_dir("candidates", key) / f"{name}.parquet"


def _read(path, asset: str, key: str):
    import polars as pl

    if not path.exists():
        raise MissingUpstream(f"{asset} has no partition {key} ({path} is missing): materialize {asset} for {key} first")
    return pl.read_parquet(path)


def _source_asset(name: str, fn, weeks, automation) -> dg.AssetsDefinition:
    asset = f"{name}_candidates"

    @dg.asset(
        name=asset, partitions_def=weeks, deps=TABLES, group_name=GROUP, automation_condition=automation,
        code_version=code_version(f"1-{_defaults_version(fn)}"), kinds={"polars", "parquet"},
        description=(fn.__doc__ or name).strip().splitlines()[0].replace("``", ""),
        check_specs=[checks.contract_spec(asset)],
    )
    def _asset(context: dg.AssetExecutionContext, data: DataResource) -> dg.MaterializeResult:
        from hm_recsys import io
        from hm_recsys.weeks import TargetWeek

        week = TargetWeek.from_key(context.partition_key)
        tables = data.tables()
        frame = fn(tables, week)
        path = io.write_parquet(frame, _candidates_path(data, week.key, name))
        return dg.MaterializeResult(data_version=data_version(path),
                                    metadata={"path": dg.MetadataValue.path(str(path)), **_source_metadata(frame, tables, week)},
                                    check_results=[checks.check_contract(frame, name, tables)])

    return _asset


def build(weeks: dg.PartitionsDefinition, ranking_weeks: dg.PartitionsDefinition, configs: dict,
          upstream: dg.AutomationCondition, scored: dg.AutomationCondition) -> list:
    from hm_recsys.candidates import SOURCES

    RankerTuningConfig = configs["ranker_hparams"]
    sources = [_source_asset(name, fn, weeks, upstream) for name, fn in SOURCES.items()]
    source_names = [*SOURCES, "two_tower"]
    training_weeks = dg.TimeWindowPartitionMapping(start_offset=-TRAIN_WEEKS, end_offset=-1)

    @dg.asset(
        partitions_def=weeks, deps=[*sources, "retrieval_candidates", *TABLES], group_name=GROUP,
        code_version=code_version("1"), kinds={"polars", "parquet"}, automation_condition=upstream,
        check_specs=[checks.spec("candidates", checks.CONTRACT, "One row per proposed (customer, article), both known; every row proposed by at least one source.")],
    )
    def candidates(context: dg.AssetExecutionContext, data: DataResource) -> dg.MaterializeResult:
        """Union of every source, each source's score and rank kept as ranker features; per-source recall in metadata."""
        from hm_recsys import io
        from hm_recsys.candidates import union_candidates
        from hm_recsys.weeks import TargetWeek

        week = TargetWeek.from_key(context.partition_key)
        tables = data.tables()
        frames = {n: _read(_candidates_path(data, week.key, n), f"{n}_candidates" if n in SOURCES else "retrieval_candidates", week.key)
                  for n in source_names}
        union = union_candidates(frames)
        path = io.write_parquet(union, _candidates_path(data, week.key, "union"))
        table = [{"source": n, **_source_metadata(f, tables, week)} for n, f in [*frames.items(), ("union", union)]]
        meta = {"path": dg.MetadataValue.path(str(path)), "rows": union.height, "per_source": markdown_table(table)}
        if "recall" in table[-1]:
            meta["recall/union"] = table[-1]["recall"]
        return dg.MaterializeResult(data_version=data_version(path), metadata=meta, check_results=[checks.check_union(union, tables)])

    @dg.asset(
        partitions_def=weeks, deps=[candidates, "two_tower_finetuned", "image_embeddings", *TABLES], group_name=GROUP,
        code_version=code_version("1"), kinds={"polars", "parquet"}, automation_condition=upstream,
    )
    def ranker_features(context: dg.AssetExecutionContext, data: DataResource) -> dg.MaterializeResult:
        """User, article, cross, recency, embedding and source features for every candidate, as of the week's cutoff."""
        from hm_recsys import io
        from hm_recsys.defs.assets.retrieval import load_image_embeddings
        from hm_recsys.ranking.features import build_features, feature_columns
        from hm_recsys.weeks import TargetWeek

        week = TargetWeek.from_key(context.partition_key)
        tables = data.tables()
        union = _read(_candidates_path(data, week.key, "union"), "candidates", week.key)
        item_vectors = load_image_embeddings(data).sort("article_idx")["embedding"].to_numpy()
        frame = build_features(tables, week, union, item_vectors=item_vectors)
        path = io.write_parquet(frame, data.paths.week_dir("features", week.key) / "ranker_features.parquet")
        cols = feature_columns(frame)
        return dg.MaterializeResult(
            data_version=data_version(path),
            metadata={"path": dg.MetadataValue.path(str(path)), "rows": frame.height, "n_features": len(cols),
                      "features": dg.MetadataValue.json(cols)},
        )

    def _training_frames(context: dg.AssetExecutionContext, data: DataResource):
        """Labelled feature frames of the training weeks (the partition mapping's keys), oldest first."""
        import polars as pl

        from hm_recsys.ranking.labels import attach_labels
        from hm_recsys.weeks import TargetWeek, labels

        tables = data.tables()
        keys = sorted(context.asset_partition_keys_for_input(FEATURES))
        frames = []
        for key in keys:
            path = data.paths.week_dir("features", key) / "ranker_features.parquet"
            if not path.exists():
                raise MissingUpstream(f"training week {key} of {context.partition_key}: {FEATURES} has no partition {key}; "
                                      f"materialize {FEATURES} for {key} first (a backfill from {key} builds it)")
            week = TargetWeek.from_key(key)
            # Only that week's buyers form ranking groups with a positive: read just their rows.
            buyers = labels(tables.transactions, week).select(pl.col("customer_idx").cast(pl.Int32)).unique()
            rows = pl.scan_parquet(path).join(buyers.lazy(), on="customer_idx", how="semi").collect()
            frames.append(attach_labels(rows, tables, week))
        return tables, keys, frames

    def _task_type(compute: ComputeResource) -> str:
        return "GPU" if compute.torch_device() == "cuda" else "CPU"

    ranking = dict(partitions_def=ranking_weeks, group_name=GROUP, automation_condition=scored)

    @dg.asset(
        code_version=code_version("1", RankerTuningConfig), kinds={"catboost", "optuna"}, pool=GPU_POOL,
        deps=[dg.AssetDep(ranker_features, partition_mapping=training_weeks), *TABLES], **ranking,
    )
    def ranker_hparams(context: dg.AssetExecutionContext, config: RankerTuningConfig, data: DataResource,
                       compute: ComputeResource, mlflow: MlflowTracking) -> dg.MaterializeResult:
        """Optuna study over CatBoost depth, learning rate, L2 and iterations, scored by MAP@12 on the newest training week."""
        import mlflow as mlf

        from hm_recsys import io
        from hm_recsys.ranking.tuning import tune_ranker
        from hm_recsys.weeks import TargetWeek, labels

        tables, keys, frames = _training_frames(context, data)
        with mlflow.run(context) as run_id:
            def log_trial(study, trial):
                mlf.log_metric("tuning_map12", trial.value if trial.value is not None else float("nan"), step=trial.number)

            result = tune_ranker(frames, n_trials=config.n_trials, seed=config.seed, objective=config.objective,
                                 task_type=_task_type(compute), negatives_per_group=config.negatives_per_group,
                                 valid_purchases=labels(tables.transactions, TargetWeek.from_key(keys[-1])),
                                 callbacks=[log_trial])
            mlf.log_params({f"ranker.{k}": v for k, v in result.best_params.items()})
            mlf.log_metric("tuning_best_map12", result.best_map)
            mlf.log_text(result.trials.write_csv(), f"ranker_hparams/{context.partition_key}/trials.csv")
        path = io.write_json({"objective": config.objective, "params": result.best_params, "best_map12": result.best_map,
                              "negatives_per_group": config.negatives_per_group, "training_weeks": keys},
                             data.paths.week_dir("models", context.partition_key) / "ranker_hparams.json")
        return dg.MaterializeResult(
            data_version=data_version(path),
            metadata={"best_map12_on_newest_training_week": result.best_map, "best_params": dg.MetadataValue.json(result.best_params),
                      "trials": markdown_table(result.trials.to_dicts()), "training_weeks": dg.MetadataValue.json(keys),
                      "mlflow_run_id": run_id, **config_metadata(config)},
        )

    @dg.asset(
        code_version=code_version("1"), kinds={"catboost", "mlflow"}, pool=GPU_POOL,
        deps=[ranker_hparams, dg.AssetDep(ranker_features, partition_mapping=training_weeks), *TABLES], **ranking,
    )
    def ranker_model(context: dg.AssetExecutionContext, data: DataResource, compute: ComputeResource,
                     mlflow: MlflowTracking) -> dg.MaterializeResult:
        """CatBoost trained with the tuned parameters on all training weeks; saved, registered in MLflow."""
        import json

        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import mlflow as mlf

        from hm_recsys.ranking.labels import training_set
        from hm_recsys.ranking.ranker import feature_importance, save_model, train_ranker

        models = data.paths.week_dir("models", context.partition_key)
        hp = json.loads((models / "ranker_hparams.json").read_text())
        tables, keys, frames = _training_frames(context, data)
        train = training_set(frames, negatives_per_group=hp["negatives_per_group"])
        model = train_ranker(train, hp["params"], objective=hp["objective"], task_type=_task_type(compute))
        path = save_model(model, models / "ranker.cbm")
        imp = feature_importance(model).head(25)
        fig, ax = plt.subplots(figsize=(6, 7))
        ax.barh(imp[imp.columns[0]].to_list()[::-1], imp[imp.columns[1]].to_list()[::-1])
        ax.set_title(f"CatBoost feature importance, week {context.partition_key}")
        picture = png_markdown(fig)
        plt.close(fig)
        with mlflow.run(context) as run_id:
            mlf.log_params({f"ranker.{k}": v for k, v in hp["params"].items()} | {"ranker.objective": hp["objective"]})
            info = mlf.catboost.log_model(model, name="ranker", registered_model_name="hm_recsys_ranker")
        return dg.MaterializeResult(
            data_version=data_version(path),
            metadata={"path": dg.MetadataValue.path(str(path)), "training_rows": train.height,
                      "training_weeks": dg.MetadataValue.json(keys), "feature_importance": picture,
                      "mlflow_run_id": run_id, "mlflow_model_uri": str(getattr(info, "model_uri", ""))},
        )

    @dg.asset(
        code_version=code_version("1"), kinds={"catboost", "csv"}, deps=[ranker_model, ranker_features, *TABLES],
        check_specs=[checks.submission_spec("final")], **ranking,
    )
    def final(context: dg.AssetExecutionContext, data: DataResource) -> dg.MaterializeResult:
        """Ranker top-12 per customer with popular fill: the Kaggle submission final.csv."""
        from hm_recsys.defs.assets.baselines import write_recommender_submission
        from hm_recsys.metrics import K
        from hm_recsys.ranking.ranker import load_model, score, top_k

        key = context.partition_key
        model = load_model(data.paths.week_dir("models", key) / "ranker.cbm")
        features = _read(data.paths.week_dir("features", key) / "ranker_features.parquet", FEATURES, key)
        recs = top_k(score(model, features), K)
        return write_recommender_submission(data, key, "final", recs, data.tables())

    return [*sources, candidates, ranker_features, ranker_hparams, ranker_model, final]
