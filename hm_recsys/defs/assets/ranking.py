"""The candidate sources and their union (group ``retrieval``, the funnel's first stage beside the towers of
``retrieval.py``), then the ranking stage (group ``ranking``): ranker features, Optuna-tuned CatBoost, final.

Frames that grow with customers x candidates (the union, the features) are customer-bucketed datasets
written one bucket at a time (``hm_recsys.buckets``), so memory is bounded by the bucket size.

The ranker for week W learns from weeks W-k..W-1: each week's ``candidates`` (as of its own cutoff),
cut to that week's buyers plus sampled negatives, featurised as of that cutoff and labelled by its own
purchases; nothing from W or later enters. That dependency is a partition mapping, so Dagster itself
builds the training weeks first (automation and backfills order partitions by it), and the ranking
assets start k weeks after the first target week so that every ranking partition has its training weeks.
"""

import inspect

import dagster as dg

from hm_recsys.defs import checks
from hm_recsys.defs.assets.history import TABLES
from hm_recsys.defs.assets.retrieval import GROUP as RETRIEVAL
from hm_recsys.defs.jobs import CPU_TAGS, GPU_POOL, GPU_TAGS
from hm_recsys.defs.mlflow_logging import markdown_table, png_markdown
from hm_recsys.defs.partitions import TRAIN_WEEKS
from hm_recsys.defs.priority import yield_cpu
from hm_recsys.defs.resources import ComputeResource, DataResource, MlflowTracking
from hm_recsys.defs.versioning import code_version, config_hash, config_metadata, data_version, describe, dict_hash

GROUP = "ranking"
FEATURES = "ranker_features"
TRAINING_INPUT = "candidates"  # the ranker's training weeks are featurised from their candidates, buyers only
WARM_START_INPUT = "ranker_hparams"  # tuning for week W starts from W-1's best parameters


class MissingUpstream(FileNotFoundError):
    """An input partition that was never materialized: names the asset and partition to build."""


def _defaults_version(fn) -> str:
    """A source's code version follows its keyword defaults, so changing a default re-runs it."""
    defaults = {k: repr(p.default) for k, p in inspect.signature(fn).parameters.items() if p.default is not inspect.Parameter.empty}
    return dict_hash(defaults)


def _source_metadata(frame) -> dict:
    """Size only: recall needs the week's purchases, which no candidate asset declares (the evaluation does)."""
    per_customer = frame.group_by("customer_idx").len()
    return {"rows": frame.height, "customers": per_customer.height,
            "mean_per_customer": float(per_customer["len"].mean() or 0.0)}


def _candidates_path(data: DataResource, key: str, name: str):
    return data.paths.week_dir("candidates", key) / f"{name}.parquet"


def _union_dir(data: DataResource, key: str):
    return data.paths.week_dir("candidates", key) / "union"


def _features_dir(data: DataResource, key: str):
    return data.paths.week_dir("features", key) / "ranker_features"


def _item_vectors(data: DataResource):
    from hm_recsys.defs.assets.retrieval import load_image_embeddings

    return load_image_embeddings(data).sort("article_idx")["embedding"].to_numpy()


def _source_asset(name: str, fn, weeks, automation) -> dg.AssetsDefinition:
    asset = f"{name}_candidates"

    @dg.asset(
        name=asset, partitions_def=weeks, deps=TABLES, group_name=RETRIEVAL, automation_condition=automation,
        code_version=code_version(f"{getattr(fn, 'version', 1)}-{_defaults_version(fn)}"), kinds={"polars", "parquet"},
        description=describe(fn),
        check_specs=[checks.contract_spec(asset)], op_tags=CPU_TAGS,
    )
    def _asset(context: dg.AssetExecutionContext, data: DataResource) -> dg.MaterializeResult:
        from hm_recsys import io
        from hm_recsys.weeks import TargetWeek

        week = TargetWeek.from_key(context.partition_key)
        tables = data.tables()
        frame = fn(tables, week)
        path = io.write_parquet(frame, _candidates_path(data, week.key, name))
        return dg.MaterializeResult(data_version=data_version(path),
                                    metadata={"path": dg.MetadataValue.path(str(path)), **_source_metadata(frame)},
                                    check_results=checks.for_week([checks.check_contract(frame, name, tables)], week.key))

    return _asset


def build(weeks: dg.PartitionsDefinition, ranking_weeks: dg.PartitionsDefinition, configs: dict,
          upstream: dg.AutomationCondition, scored: dg.AutomationCondition, tuning: dg.AutomationCondition | None = None) -> list:
    from hm_recsys.candidates import SOURCES

    RankerTuningConfig, CandidatesConfig = configs["ranker_hparams"], configs["candidates"]
    # The training assets featurise their weeks with the same switches as ranker_features (the model must learn
    # the features it is scored on), so the switches are part of their code versions too.
    FeaturesConfig = configs["ranker_features"]
    # A switched-off source is left out of the graph (nothing computes it) and of the union (no ranker feature).
    used = {name: fn for name, fn in SOURCES.items() if name != "bpr" or CandidatesConfig().bpr}
    sources = [_source_asset(name, fn, weeks, upstream) for name, fn in used.items()]
    training_weeks = dg.TimeWindowPartitionMapping(start_offset=-TRAIN_WEEKS, end_offset=-1)
    previous_week = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)

    @dg.asset(
        partitions_def=weeks, deps=[*sources, "retrieval_candidates", *TABLES], group_name=RETRIEVAL,
        code_version=code_version("3", CandidatesConfig), kinds={"polars", "parquet"}, automation_condition=upstream,
        check_specs=[checks.spec("candidates", checks.CONTRACT, "One row per proposed (customer, article), both known; "
                                 "every row proposed by at least one source.")],
        op_tags=CPU_TAGS,
    )
    def candidates(context: dg.AssetExecutionContext, config: CandidatesConfig, data: DataResource) -> dg.MaterializeResult:
        """Union of every source, one customer bucket at a time; each source's score and rank kept as ranker features."""
        from hm_recsys.candidates.union import write_union_buckets
        from hm_recsys.weeks import TargetWeek

        week = TargetWeek.from_key(context.partition_key)
        tables = data.tables()
        paths = {}
        for n in [*(n for n in SOURCES if n != "bpr" or config.bpr), "two_tower"]:
            paths[n] = _candidates_path(data, week.key, n)
            if not paths[n].exists():
                asset = f"{n}_candidates" if n in SOURCES else "retrieval_candidates"
                raise MissingUpstream(f"{asset} has no partition {week.key} ({paths[n]} is missing): materialize it first")
        out = _union_dir(data, week.key)  # per-source recall needs the week's purchases: the evaluation's (it declares them)
        info = write_union_buckets(paths, out, tables.n_customers, config.bucket_customers)
        table = [{"source": n, **stats} for n, stats in info["per_source"].items()]
        meta = {"path": dg.MetadataValue.path(str(out)), "rows": info["rows"], "buckets": info["buckets"],
                "bucket_customers": info["bucket_customers"], "per_source": markdown_table(table), **config_metadata(config)}
        return dg.MaterializeResult(data_version=data_version(out), metadata=meta,
                                    check_results=checks.for_week([checks.check_union_buckets(out, tables)], week.key))

    @dg.asset(
        partitions_def=weeks, deps=[candidates, "image_embeddings", *TABLES], group_name=GROUP,  # what it reads
        code_version=code_version("4", FeaturesConfig), kinds={"polars", "parquet"}, automation_condition=scored,
        op_tags=CPU_TAGS,
    )
    def ranker_features(context: dg.AssetExecutionContext, config: FeaturesConfig, data: DataResource) -> dg.MaterializeResult:
        """User, article, cross, recency, embedding and source features for every candidate, bucket by bucket, as of the week's cutoff."""
        yield_cpu(context.run.tags)
        from hm_recsys.ranking.bucketed import write_feature_buckets
        from hm_recsys.weeks import TargetWeek

        week = TargetWeek.from_key(context.partition_key)
        union = _union_dir(data, week.key)
        if not union.exists():
            raise MissingUpstream(f"candidates has no partition {week.key} ({union} is missing): materialize it first")
        out = _features_dir(data, week.key)
        info = write_feature_buckets(data.tables(), week, union, out, item_vectors=_item_vectors(data),
                                     sequence=config.sequence)
        return dg.MaterializeResult(
            data_version=data_version(out),
            metadata={"path": dg.MetadataValue.path(str(out)), "rows": info["rows"], "buckets": info["buckets"],
                      "n_features": info["n_features"], "features": dg.MetadataValue.json(info["features"]),
                      **config_metadata(config)},
        )

    def _training_frames(context: dg.AssetExecutionContext, data: DataResource, negatives: int, seed: int,
                         validate_on_newest: bool = False, max_buyers: int | None = None):
        """Labelled rows of the training weeks (the partition mapping's keys), oldest first: each week's buyers
        (at most ``max_buyers`` of them, a seeded sample) with every positive and ``negatives`` sampled
        negatives, featurised as of that week's own cutoff. ``validate_on_newest`` keeps all candidates of
        every kept buyer of the newest week, as tuning scores it. Feature switches: ranker_features' configured ones."""
        from hm_recsys.ranking.bucketed import training_rows
        from hm_recsys.weeks import TargetWeek

        tables = data.tables()
        keys = sorted(context.asset_partition_keys_for_input(TRAINING_INPUT))
        vectors = _item_vectors(data)
        frames = []
        for key in keys:
            union = _union_dir(data, key)
            if not union.exists():
                raise MissingUpstream(f"training week {key} of {context.partition_key}: {TRAINING_INPUT} has no partition {key}; "
                                      f"materialize {TRAINING_INPUT} for {key} first (a backfill from {key} builds it)")
            full = validate_on_newest and key == keys[-1]
            frames.append(training_rows(tables, TargetWeek.from_key(key), union, vectors, seed=seed,
                                        negatives_per_buyer=None if full else negatives, drop_buyers_without_positive=not full,
                                        max_buyers=max_buyers, sequence=FeaturesConfig().sequence))
        return tables, keys, frames

    def _task_type(compute: ComputeResource) -> str:
        return "GPU" if compute.torch_device() == "cuda" else "CPU"

    ranking = dict(partitions_def=ranking_weeks, group_name=GROUP, automation_condition=scored)
    # Warm start (opt-in) reads the asset's own previous week, so week W's result depends on whether W-1 was built:
    # `predict` (W-1 outside its window) tunes W cold where `backtest` warm-starts it. Off by default, the same
    # data, config and seed give the same parameters whichever command asked for the week.
    warm_start = RankerTuningConfig().warm_start
    own_previous_week = [dg.AssetDep(WARM_START_INPUT, partition_mapping=previous_week)] if warm_start else []

    @dg.asset(
        code_version=f"{code_version('9', RankerTuningConfig)}-{config_hash(FeaturesConfig)}",
        kinds={"catboost", "optuna"}, pool=GPU_POOL, op_tags=GPU_TAGS,
        deps=[dg.AssetDep(candidates, partition_mapping=training_weeks), "image_embeddings", *TABLES, *own_previous_week],
        **(ranking | {"automation_condition": (tuning or scored) if warm_start else scored}),
    )
    def ranker_hparams(context: dg.AssetExecutionContext, config: RankerTuningConfig, data: DataResource,
                       compute: ComputeResource, mlflow: MlflowTracking) -> dg.MaterializeResult:
        """Optuna study of CatBoost's depth, learning rate, L2 and trees by MAP@12 on the newest training week, and the blend weight."""
        yield_cpu(context.run.tags)
        import json

        import mlflow as mlf
        import polars as pl

        from hm_recsys import io
        from hm_recsys.baselines import popular_articles
        from hm_recsys.ranking.blend import BLEND_WEIGHTS, POPULAR_DEPTH
        from hm_recsys.ranking.bucketed import sample_customers
        from hm_recsys.ranking.tuning import tune_ranker
        from hm_recsys.weeks import TargetWeek, labels

        tables, keys, frames = _training_frames(context, data, config.negatives_per_group, config.seed, validate_on_newest=True,
                                                max_buyers=config.sample_buyers)
        truth = labels(tables.transactions, TargetWeek.from_key(keys[-1]))  # MAP@12 over the sampled buyers
        kept = sample_customers(truth["customer_idx"].to_numpy(), config.sample_buyers, config.seed)
        truth = truth.filter(pl.col("customer_idx").is_in(pl.Series(kept, dtype=truth.schema["customer_idx"]).implode()))
        # W-1's best parameters (W-1 tuned on weeks before W-1 only: point-in-time safe); io publishes files atomically
        warm, warm_week = None, None
        previous = sorted(context.asset_partition_keys_for_input(WARM_START_INPUT)) if warm_start and config.warm_start else []
        if previous and (found := data.paths.week_dir("models", previous[-1]) / "ranker_hparams.json").exists():
            warm, warm_week = json.loads(found.read_text())["params"], previous[-1]
        with mlflow.run(context) as run_id:
            def log_trial(study, trial):  # a pruned trial has no MAP@12 (Optuna keeps its last intermediate value)
                mlf.log_metric("tuning_map12", trial.value if trial.state.name == "COMPLETE" else float("nan"), step=trial.number)

            result = tune_ranker(frames, n_trials=config.n_trials, seed=config.seed, objective=config.loss(),
                                 task_type=_task_type(compute), negatives_per_group=config.negatives_per_group,
                                 valid_purchases=truth, warm_start=warm, prune=config.prune,
                                 blend_weights=BLEND_WEIGHTS if config.blend else None,
                                 valid_popular=popular_articles(tables, TargetWeek.from_key(keys[-1]), n=POPULAR_DEPTH),
                                 callbacks=[log_trial])
            mlf.log_params({f"ranker.{k}": v for k, v in result.best_params.items()})
            mlf.log_metric("tuning_best_map12", result.best_map)
            mlf.log_metric("blend_weight", result.blend_weight)
            mlf.log_text(result.trials.write_csv(), f"ranker_hparams/{context.partition_key}/trials.csv")
        path = io.write_json({"objective": config.loss(), "params": result.best_params, "best_map12": result.best_map,
                              "negatives_per_group": config.negatives_per_group, "seed": config.seed, "training_weeks": keys,
                              "warm_start_week": warm_week, "pruned_trials": result.pruned, "blend_weight": result.blend_weight},
                             data.paths.week_dir("models", context.partition_key) / "ranker_hparams.json")
        return dg.MaterializeResult(
            data_version=data_version(path),
            metadata={"best_map12_on_newest_training_week": result.best_map, "best_params": dg.MetadataValue.json(result.best_params),
                      "trials": markdown_table(result.trials.to_dicts()), "training_weeks": dg.MetadataValue.json(keys),
                      "pruned_trials": result.pruned, "warm_start_week": warm_week or "none",
                      "blend_weight": result.blend_weight,
                      "blend_map12_by_weight": dg.MetadataValue.json({str(w): m for w, m in (result.blend_maps or {}).items()}),
                      "mlflow_run_id": run_id, **config_metadata(config)},
        )

    @dg.asset(
        code_version=code_version("4", FeaturesConfig), kinds={"catboost", "mlflow"}, pool=GPU_POOL, op_tags=GPU_TAGS,
        deps=[ranker_hparams, dg.AssetDep(candidates, partition_mapping=training_weeks), "image_embeddings", *TABLES], **ranking,
    )
    def ranker_model(context: dg.AssetExecutionContext, data: DataResource, compute: ComputeResource,
                     mlflow: MlflowTracking) -> dg.MaterializeResult:
        """CatBoost trained with the tuned parameters on all training weeks; saved, registered in MLflow."""
        yield_cpu(context.run.tags)
        import json

        import catboost
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import mlflow as mlf

        from hm_recsys.ranking.labels import training_set
        from hm_recsys.ranking.ranker import feature_importance, save_model, train_ranker

        models = data.paths.week_dir("models", context.partition_key)
        hp = json.loads((models / "ranker_hparams.json").read_text())
        tables, keys, frames = _training_frames(context, data, hp["negatives_per_group"], hp.get("seed", 0))
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
            # requirements named: MLflow otherwise infers them by loading the model in a subprocess (~2 s a week)
            info = mlf.catboost.log_model(model, name="ranker", registered_model_name="hm_recsys_ranker",
                                          pip_requirements=[f"catboost=={catboost.__version__}"])
        return dg.MaterializeResult(
            data_version=data_version(path),
            metadata={"path": dg.MetadataValue.path(str(path)), "training_rows": train.height,
                      "training_weeks": dg.MetadataValue.json(keys), "feature_importance": picture,
                      "mlflow_run_id": run_id, "mlflow_model_uri": str(getattr(info, "model_uri", ""))},
        )

    @dg.asset(
        code_version=code_version("3"), kinds={"catboost", "csv"}, deps=[ranker_model, ranker_hparams, ranker_features, *TABLES],
        check_specs=[checks.submission_spec("final")], op_tags=CPU_TAGS, **ranking,
    )
    def final(context: dg.AssetExecutionContext, data: DataResource) -> dg.MaterializeResult:
        """Ranker top-12 per customer (blended with the heuristic order by the tuned weight), popular fill: the Kaggle final.csv."""
        yield_cpu(context.run.tags)
        import json

        from hm_recsys.baselines import popular_articles
        from hm_recsys.defs.assets.baselines import write_recommender_submission
        from hm_recsys.ranking.blend import POPULAR_DEPTH
        from hm_recsys.ranking.bucketed import recommend_from_buckets
        from hm_recsys.ranking.ranker import load_model
        from hm_recsys.weeks import TargetWeek

        key = context.partition_key
        tables = data.tables()
        features = _features_dir(data, key)
        if not features.exists():
            raise MissingUpstream(f"{FEATURES} has no partition {key} ({features} is missing): materialize it first")
        models, week = data.paths.week_dir("models", key), TargetWeek.from_key(key)
        weight = json.loads((models / "ranker_hparams.json").read_text()).get("blend_weight", 0.0)
        recs = recommend_from_buckets(load_model(models / "ranker.cbm"), features, popular_articles(tables, week),
                                      tables.n_customers, blend_weight=weight,
                                      blend_popular=popular_articles(tables, week, n=POPULAR_DEPTH))
        return write_recommender_submission(data, key, "final", recs, tables)

    return [*sources, candidates, ranker_features, ranker_hparams, ranker_model, final]
