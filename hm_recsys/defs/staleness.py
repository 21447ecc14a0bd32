"""The automation conditions that reach into Dagster internals: "unsynced" (what the UI shows as stale) and a
"missing" read from the event log (the other two modules that do: ``defs/run_launcher.py``, ``defs/sqlite_engines.py``).

Dagster's built-in operands are events seen between two evaluations (``data_version_changed``,
``code_version_changed``): an evaluation that missed the event (a killed run, a new cursor, a CLI call
after the daemon) never rebuilds. Staleness is state: an asset partition is unsynced while its code
version or an input's data version differs from what its latest materialization recorded, so a
condition built on it converges to the from-scratch result however often it is interrupted.

Dagster's ``missing`` reads a partitioned asset's materialized partitions from its status cache (dagster
1.13), whose cursor can pass a materialization it never recorded: the tick loads the asset's record, a run
materializes partition X, another run plans partition Y, then the cache is updated from the (old) record
and the (new) planned event, so X counts as missing until it is rebuilt. On a tiny backtest that rebuilt a
third of the steps a second time (towers, rankers), at full scale hours. ``Missing`` asks the event log.
``hm_recsys_tests/test_automation.py`` pins its behaviour.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.definitions.events import AssetKeyPartitionKey


class Unsynced(dg.AutomationCondition):
    """True for asset partitions that exist but whose code version or input data versions changed.

    ``upstream=True`` is also true when anything upstream (transitively, through partition mappings) is
    unsynced: Dagster's stale status does not propagate, so an asset two hops below a changed one looks
    in sync until the hop between is rebuilt, and must not run before it.

    ``live=True`` reads the asset records when evaluated instead of the tick's prefetched ones (``live_resolver``):
    the last word before a request, on the few partitions still wanted (reading them for every node cost a quarter
    more per evaluation).
    """

    upstream: bool = False
    live: bool = False

    def __init__(self, upstream: bool = False, live: bool = False):
        object.__setattr__(self, "upstream", upstream)
        object.__setattr__(self, "live", live)

    @property
    def name(self) -> str:
        return ("unsynced_or_upstream_unsynced" if self.upstream else "unsynced") + ("_now" if self.live else "")

    @property
    def description(self) -> str:
        own = "code version or an input's data version differs from the latest materialization's"
        return own + (", here or anywhere upstream" if self.upstream else "") + (", read when evaluated" if self.live else "")

    def get_node_unique_id(self, *, parent_unique_id, index, target_key=None) -> str:
        return f"{self.name}-{parent_unique_id}-{index}"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        view = context.asset_graph_view
        resolver = live_resolver(view, context.asset_graph) if self.live else CachingStaleStatusResolver(
            instance=view.instance, asset_graph=context.asset_graph, loading_context=view)
        check = _upstream_checker(resolver) if self.upstream else (
            lambda ap: resolver.get_status(ap.asset_key, ap.partition_key) == StaleStatus.STALE)
        stale = {ap for ap in context.candidate_subset.expensively_compute_asset_partitions() if check(ap)}
        return dg.AutomationResult(context, view.get_asset_subset_from_asset_partitions(context.key, stale))


def live_resolver(view, asset_graph) -> CachingStaleStatusResolver:
    """A stale-status resolver that reads the asset records when asked, not the tick's prefetched ones.

    The daemon's tick loads every asset's record first; ``Missing`` and the run statuses are read live. A run that
    rebuilt an input (its materializations wiped) and ended during the tick left the input "missing" in the tick's
    records, so the asset below looked unsynced while its input looked present and done: the towers of three weeks
    were retrained for nothing (a cluster test, on a rebuilt ``image_embeddings`` of the same bytes). Read live, and
    after the inputs' checks (``automation.rebuild``), the input's new materialization is what is compared."""
    from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView
    from dagster._core.definitions.temporal_context import TemporalContext

    fresh = AssetGraphView(temporal_context=TemporalContext(effective_dt=view.effective_dt, last_event_id=None),
                           instance=view.instance, asset_graph=asset_graph)
    return CachingStaleStatusResolver(instance=view.instance, asset_graph=asset_graph, loading_context=fresh)


def _upstream_checker(resolver: CachingStaleStatusResolver):
    """``ap -> bool``: ``ap`` or a transitive upstream partition of it is STALE (memoised per evaluation)."""
    seen: dict[AssetKeyPartitionKey, bool] = {}

    def check(ap: AssetKeyPartitionKey) -> bool:
        if ap not in seen:
            seen[ap] = False
            node = resolver.asset_graph.get(ap.asset_key)
            if node.is_materializable and resolver.get_status(ap.asset_key, ap.partition_key) == StaleStatus.STALE:
                seen[ap] = True
            else:
                # an asset's own earlier partition (a self-dependency) is its automation condition's business: an
                # old week outside the window stays unsynced for good and must not hold back every later week
                seen[ap] = any(check(dep) for dep in resolver._get_partition_dependencies(key=ap) if dep.asset_key != ap.asset_key)
        return seen[ap]

    return check


class Missing(dg.AutomationCondition):
    """True for asset partitions with no materialization in the event log, read when evaluated (Dagster's
    ``missing`` without its status cache; see the module docstring). Observable sources: Dagster's own."""

    @property
    def name(self) -> str:
        return "missing"

    def get_node_unique_id(self, *, parent_unique_id, index, target_key=None) -> str:
        return f"fresh_missing-{parent_unique_id}-{index}"

    async def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        view, candidates = context.asset_graph_view, context.candidate_subset
        node = context.asset_graph.get(context.key)
        if not node.is_materializable:
            return dg.AutomationResult(context, await view.compute_missing_subset(key=context.key, from_subset=candidates))
        instance = view.instance
        if node.partitions_def is None:
            done = instance.get_latest_materialization_event(context.key) is not None
            missing = set() if done else set(candidates.expensively_compute_asset_partitions())
        else:
            done = instance.get_materialized_partitions(context.key)
            missing = {ap for ap in candidates.expensively_compute_asset_partitions() if ap.partition_key not in done}
        return dg.AutomationResult(context, view.get_asset_subset_from_asset_partitions(context.key, missing))
