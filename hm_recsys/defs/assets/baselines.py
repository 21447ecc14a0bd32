"""Heuristic recommenders as per-week assets, each a full Kaggle-format submission file."""

import dagster as dg

from hm_recsys.defs import checks
from hm_recsys.defs.assets.history import TABLES
from hm_recsys.defs.jobs import CPU_TAGS
from hm_recsys.defs.resources import DataResource
from hm_recsys.defs.versioning import code_version, data_version, describe

GROUP = "baselines"
# Bump a baseline's entry when its logic changes: Dagster then shows it (and its dependants) unsynced.
CODE_VERSIONS = {"popular_all_time": "1", "popular_last_week": "1", "repurchase_popular": "2"}


def write_recommender_submission(data: DataResource, week_key: str, name: str, recs, tables, extra_paths=()) -> dg.MaterializeResult:
    """Top up with last-week popular, validate, write atomically; the file's own check reads it back."""
    from hm_recsys import submission
    from hm_recsys.baselines import popular_articles
    from hm_recsys.weeks import TargetWeek

    week = TargetWeek.from_key(week_key)
    path = data.paths.submission(week.key, name)
    filled = submission.write_submission(recs, popular_articles(tables, week), tables, path)
    own = recs.group_by("customer_idx").len()
    return dg.MaterializeResult(
        data_version=data_version(*extra_paths, path),
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "customers": filled["customer_idx"].n_unique(),
            "customers_with_own_recommendations": own.height,
            "mean_own_recommendations": float(own["len"].mean() or 0.0),
        },
        check_results=checks.for_week([checks.check_submission(path, tables)], week.key),
    )


def _baseline_asset(name: str, fn, weeks: dg.PartitionsDefinition, automation: dg.AutomationCondition) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        partitions_def=weeks,
        deps=TABLES,
        group_name=GROUP,
        code_version=code_version(CODE_VERSIONS[name]),
        kinds={"polars", "csv"},
        description=describe(fn),
        automation_condition=automation,
        check_specs=[checks.submission_spec(name)],
        op_tags=CPU_TAGS,
    )
    def _asset(context: dg.AssetExecutionContext, data: DataResource) -> dg.MaterializeResult:
        from hm_recsys.weeks import TargetWeek

        tables = data.tables()
        recs = fn(tables, TargetWeek.from_key(context.partition_key))
        return write_recommender_submission(data, context.partition_key, name, recs, tables)

    return _asset


def build(weeks: dg.PartitionsDefinition, automation: dg.AutomationCondition) -> list[dg.AssetsDefinition]:
    from hm_recsys.baselines import BASELINES

    return [_baseline_asset(name, fn, weeks, automation) for name, fn in BASELINES.items()]
