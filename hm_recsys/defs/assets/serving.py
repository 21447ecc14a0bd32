"""``serving_snapshot``: the production week's recommendations as the online service loads them.

Built by the ranking stage right after ``final`` (the ``rebuild_ranking`` sensor), for the production week
only (the caller passes a one-week automation window); materializing another ranking week by hand builds
its snapshot too, but ``current`` keeps naming the newest week. The pure code is ``hm_recsys.serving``.
"""

import dagster as dg

from hm_recsys.defs import checks
from hm_recsys.defs.jobs import CPU_TAGS
from hm_recsys.defs.priority import yield_cpu
from hm_recsys.defs.resources import DataResource
from hm_recsys.defs.versioning import code_version

ASSET = "serving_snapshot"
COVERED = "every_customer_covered"
ROWS = "twelve_distinct_known_articles"
VERSION = "version_recorded"


class MissingFinal(FileNotFoundError):
    """The week's final.csv is absent: names what to build."""


def _checks(snap, error: str | None, tables, published, pointer: str | None) -> list[dg.AssetCheckResult]:
    """Read back from disk: the published folder loads (``load_snapshot``: hash, shapes, 12 distinct known
    articles per row) and holds exactly the tables' customers."""
    import numpy as np

    if snap is None:
        return [dg.AssetCheckResult(check_name=name, passed=False, metadata={"error": error}) for name in (COVERED, ROWS, VERSION)]
    ids = np.sort(tables.customers["customer_id"].to_numpy().astype("S"))
    covered = ids.shape == snap.customer_ids.shape and bool((ids == snap.customer_ids).all())
    recorded = snap.version == published.version == snap.path.name and (not published.current or pointer == f"{snap.week}/{snap.version}")
    return [
        dg.AssetCheckResult(check_name=COVERED, passed=covered,
                            metadata={"customers": snap.n_customers, "customers_in_tables": tables.n_customers}),
        dg.AssetCheckResult(check_name=ROWS, passed=True,  # load_snapshot refuses any other row
                            metadata={"rows": snap.n_customers, "fallback_lists": len(snap.fallback)}),
        dg.AssetCheckResult(check_name=VERSION, passed=recorded,
                            metadata={"version": snap.version, "current": pointer or "none"}),
    ]


def build(ranking_weeks: dg.PartitionsDefinition, automation: dg.AutomationCondition) -> dg.AssetsDefinition:
    @dg.asset(
        name=ASSET, partitions_def=ranking_weeks, deps=["final", "history"], group_name="serving",
        code_version=code_version("1"), kinds={"numpy"}, automation_condition=automation, op_tags=CPU_TAGS,
        check_specs=[
            checks.spec(ASSET, COVERED, "Every customer of customers.csv has a row, and no other id."),
            checks.spec(ASSET, ROWS, "Every row, and every fallback list, is 12 distinct articles that exist in articles.csv."),
            checks.spec(ASSET, VERSION, "The folder is named by its content hash, the manifest records it, and current names it."),
        ],
    )
    def serving_snapshot(context: dg.AssetExecutionContext, data: DataResource) -> dg.MaterializeResult:
        """The week's final.csv and its popular fallbacks (overall, per age group) as a versioned snapshot the API serves."""
        yield_cpu(context.run.tags)
        import time

        from hm_recsys.serving.snapshot import (
            SnapshotError,
            build_snapshot,
            load_snapshot,
            publish,
            read_pointer,
            serving_root,
        )

        key = context.partition_key
        final_csv = data.paths.submission(key, "final")
        if not final_csv.exists():
            raise MissingFinal(f"final has no partition {key} ({final_csv} is missing): materialize it first")
        t0 = time.perf_counter()
        tables = data.tables()
        content = build_snapshot(final_csv, tables, key)
        root = serving_root(data.paths.root)
        published = publish(root, content)
        seconds = time.perf_counter() - t0
        snap, error = None, None
        try:
            snap = load_snapshot(published.path)
        except SnapshotError as e:
            error = str(e)
        if published.current:
            context.log.info(f"serving snapshot {key}/{published.version} is current: a running `hm-recsys serve` picks it up")
        else:
            context.log.warning(f"serving snapshot {key}/{published.version} written, but a newer week is current: not served")
        return dg.MaterializeResult(
            data_version=dg.DataVersion(published.version),
            metadata={
                "path": dg.MetadataValue.path(str(published.path)), "version": published.version,
                "current": published.current, "customers": content.info["n_customers"],
                "articles": content.info["n_articles"], "fallback_lists": dg.MetadataValue.json(content.info["fallback_groups"]),
                "size_mib": round(published.size_bytes / 2**20, 2), "build_seconds": round(seconds, 2),
                **({"load_seconds": round(snap.load_seconds, 3)} if snap else {"refused": error}),
            },
            check_results=checks.for_week(_checks(snap, error, tables, published, read_pointer(root)), key),
        )

    return serving_snapshot
