"""Per-week evaluation: MAP@12 of every recommender's submission file, into metadata, MLflow and JSON.

The UI opens an asset on its latest materialization, often the production week's, which has no purchases to
score yet: so every materialization's metadata starts with MAP@12 per recommender across every scored week
up to its own (newest first), then the week's own scores.
"""

import json

import dagster as dg

from hm_recsys.defs import checks
from hm_recsys.defs.jobs import CPU_TAGS
from hm_recsys.defs.mlflow_logging import markdown_table
from hm_recsys.defs.priority import yield_cpu
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
        code_version=code_version("3"),
        kinds={"mlflow"},
        automation_condition=automation,
        op_tags=CPU_TAGS,
        check_specs=[checks.spec("evaluation", checks.FINAL_FLOOR, "final's MAP@12 is at least the best heuristic's.", is_blocking=False),
                     checks.spec("evaluation", checks.RECALL_FLOOR,
                                 "Two-tower recall@100 is at least last week's top-100 popular articles'.", is_blocking=False)],
    )
    def evaluation(context: dg.AssetExecutionContext, data: DataResource, mlflow: MlflowTracking) -> dg.MaterializeResult:
        """MAP@12 (Kaggle's definition) of each recommender's CSV, scored from the file as written."""
        yield_cpu(context.run.tags)
        import mlflow as mlf

        from hm_recsys import io
        from hm_recsys.evaluation import candidate_recall, recall_metrics, score_week, scored_weeks

        key = context.partition_key
        tables = data.tables()
        report = score_week(tables, key, {r: data.paths.submission(key, r) for r in recommenders})
        candidates = data.paths.week_dir("candidates", key)
        recall = report["recall"] = candidate_recall(tables, key, candidates / "two_tower.parquet", candidates / "union")
        path = io.write_json(report, data.paths.metrics(key))
        with mlflow.run(context) as run_id:
            mlf.log_metrics({f"map12_{name}": value for name, value in report["map12"].items()})
            mlf.log_metric("buyers", report["buyers"])
            mlf.log_metrics({k.replace("@", "_at_").replace("/", "_"): float(v) for k, v in recall_metrics(recall).items()})
            mlf.log_artifact(str(path), artifact_path=f"reports/{context.partition_key}")
        scores = report["map12"]
        unscored = (f"not scored: week {key} has no purchases yet (the production week)" if not report["buyers"]
                    else f"not scored: week {key} has no submission file yet")
        if not scores:
            context.log.info(unscored)
        # this week's report and every earlier week's on disk (evaluated before, or by another run)
        reports = [report, *(json.loads(p.read_text()) for p in sorted(path.parent.parent.glob("*/metrics.json"))
                             if p.parent.name < key)]
        by_week = [{k: "-" if v is None else v for k, v in row.items()} for row in scored_weeks(reports)]
        table = "\n".join(f"| {k} | {v:.5f} |" for k, v in sorted(scores.items(), key=lambda kv: -kv[1]))
        best = max((scores[h] for h in HEURISTICS if h in scores), default=None)
        skip = (checks.NOTHING_TO_COMPARE if not report["buyers"] else "final was not scored (no final.csv)"
                if "final" not in scores else "no heuristic baseline was scored (no submission file)")
        return dg.MaterializeResult(
            data_version=data_version(path),
            metadata={
                "map12_by_week": markdown_table(by_week, floatfmt=".5f") if by_week else "no week scored yet",
                "week": key,
                "scored": bool(scores),
                "map12": dg.MetadataValue.md("| recommender | MAP@12 |\n|---|---|\n" + table) if table else unscored,
                "buyers": report["buyers"],
                **{f"map12/{k}": dg.FloatMetadataValue(v) for k, v in scores.items()},
                **recall_metrics(recall),
                "mlflow_run_id": run_id,
                "path": dg.MetadataValue.path(str(path)),
            },
            check_results=checks.for_week([
                checks.floor_result(checks.FINAL_FLOOR, scores.get("final"), best, "map12_final", skip_reason=skip),
                checks.floor_result(checks.RECALL_FLOOR, recall.get("two_tower"), recall.get("last_week_popular"),
                                    f"recall@{recall.get('k')}"),
            ], key),
        )

    return evaluation
