"""Per-week evaluation: MAP@12 of every recommender's submission file, into metadata, MLflow and JSON."""

import dagster as dg

from hm_recsys.defs import checks
from hm_recsys.defs.jobs import CPU_TAGS
from hm_recsys.defs.resources import DataResource, MlflowTracking
from hm_recsys.defs.versioning import code_version, data_version

HEURISTICS = ("popular_all_time", "popular_last_week", "repurchase_popular")


def build(weeks: dg.PartitionsDefinition, recommenders: dict[str, str], automation: dg.AutomationCondition) -> dg.AssetsDefinition:
    """``recommenders``: submission name -> the asset that writes it."""

    @dg.asset(
        partitions_def=weeks,
        # transactions: the week's purchases (MAP@12, recall); candidates: the union's buckets (per-source recall). The
        # candidate assets read no label themselves, so these numbers follow the purchases as they arrive.
        deps=["transactions", "candidates", *sorted(set(recommenders.values()))],
        group_name="evaluation",
        code_version=code_version("2"),
        kinds={"mlflow"},
        automation_condition=automation,
        op_tags=CPU_TAGS,
        check_specs=[checks.spec("evaluation", checks.FINAL_FLOOR, "final's MAP@12 is at least the best heuristic's.", is_blocking=False),
                     checks.spec("evaluation", checks.RECALL_FLOOR,
                                 "Two-tower recall@100 is at least last week's top-100 popular articles'.", is_blocking=False)],
    )
    def evaluation(context: dg.AssetExecutionContext, data: DataResource, mlflow: MlflowTracking) -> dg.MaterializeResult:
        """MAP@12 (Kaggle's definition) of each recommender's CSV, scored from the file as written."""
        import mlflow as mlf

        from hm_recsys import io
        from hm_recsys.evaluation import candidate_recall, recall_metrics, score_week

        tables = data.tables()
        report = score_week(tables, context.partition_key, {r: data.paths.submission(context.partition_key, r) for r in recommenders})
        candidates = data.paths.week_dir("candidates", context.partition_key)
        recall = report["recall"] = candidate_recall(tables, context.partition_key, candidates / "two_tower.parquet", candidates / "union")
        path = io.write_json(report, data.paths.metrics(context.partition_key))
        with mlflow.run(context) as run_id:
            mlf.log_metrics({f"map12_{name}": value for name, value in report["map12"].items()})
            mlf.log_metric("buyers", report["buyers"])
            mlf.log_metrics({k.replace("@", "_at_").replace("/", "_"): float(v) for k, v in recall_metrics(recall).items()})
            mlf.log_artifact(str(path), artifact_path=f"reports/{context.partition_key}")
        scores = report["map12"]
        if not scores:
            context.log.info(f"week {context.partition_key} has no purchases yet (production week): nothing to score")
        table = "\n".join(f"| {k} | {v:.5f} |" for k, v in sorted(scores.items(), key=lambda kv: -kv[1]))
        best = max((scores[h] for h in HEURISTICS if h in scores), default=None)
        return dg.MaterializeResult(
            data_version=data_version(path),
            metadata={
                "buyers": report["buyers"],
                "mlflow_run_id": run_id,
                "path": dg.MetadataValue.path(str(path)),
                "map12": dg.MetadataValue.md("| recommender | MAP@12 |\n|---|---|\n" + table) if table else "no purchases",
                **{f"map12/{k}": dg.FloatMetadataValue(v) for k, v in scores.items()},
                **recall_metrics(recall),
            },
            check_results=[checks.floor_result(checks.FINAL_FLOOR, scores.get("final"), best, "map12_final"),
                           checks.floor_result(checks.RECALL_FLOOR, recall.get("two_tower"), recall.get("last_week_popular"),
                                               f"recall@{recall.get('k')}")],
        )

    return evaluation
