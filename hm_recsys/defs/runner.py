"""Driving the code location from the command line: the same runs, instance and history the UI shows.

Runs go through ``execute_job`` on the persistent instance under ``<data>/dagster_home``, with the
multiprocess executor, so a CLI backtest appears in ``dagster dev`` exactly like a UI launch. Before
each run, only the asset partitions Dagster reports as stale or missing are selected: an unchanged
week is not recomputed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg
import yaml

from hm_recsys.paths import DATA_DIR_ENV, DataPaths

REPO_ROOT = Path(__file__).resolve().parents[2]


# Step events go to the instance (the UI shows them); the terminal gets warnings and errors only.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


class RunFailed(RuntimeError):
    pass


def write_instance_config(home: Path) -> Path:
    """The repo's dagster.yaml without its storage paths, which then default to ``home`` itself."""
    home.mkdir(parents=True, exist_ok=True)
    settings = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    for key in ("storage", "local_artifact_storage"):
        settings.pop(key, None)
    (home / "dagster.yaml").write_text(yaml.safe_dump(settings, sort_keys=True))
    return home


def instance_for(paths: DataPaths) -> dg.DagsterInstance:
    """The persistent SQLite instance under the data folder, with the repo's concurrency settings."""
    home = write_instance_config(paths.dagster_home)
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ[DATA_DIR_ENV] = str(paths.root)
    return dg.DagsterInstance.get()


def stale_or_missing(instance: dg.DagsterInstance, defs: dg.Definitions, job_name: str, partition_key: str | None) -> list[dg.AssetKey]:
    """Asset keys of a job that Dagster considers stale (code, config default or upstream data changed) or missing."""
    from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
    from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
    from dagster._time import get_current_datetime

    graph = defs.resolve_asset_graph()
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance,
        asset_graph=graph,
    )
    resolver = CachingStaleStatusResolver(instance=instance, asset_graph=graph, loading_context=view)
    keys = defs.resolve_job_def(job_name).asset_layer.executable_asset_keys
    return [k for k in sorted(keys) if resolver.get_status(k, partition_key) in (StaleStatus.STALE, StaleStatus.MISSING)]


def observe_raw(paths: DataPaths) -> None:
    """Record the raw files' content versions, so changed files mark exactly their dependants stale."""
    from dagster._core.definitions.observe import observe

    from hm_recsys import definitions
    from hm_recsys.defs.assets import raw

    defs = definitions.build_definitions(paths)
    result = observe(raw.build(), run_config=QUIET, instance=instance_for(paths), resources=defs.resources)
    if not result.success:
        raise RunFailed(f"observing the raw files in {paths.raw} failed")


def reconfigured(instance: dg.DagsterInstance, defs: dg.Definitions, keys, partition_key: str | None,
                 asset_config: dict[str, dict]) -> set[dg.AssetKey]:
    """Assets whose latest materialization ran with another config than the one now requested."""
    from hm_recsys.definitions import ASSET_CONFIGS
    from hm_recsys.defs.versioning import CONFIG_HASH, dict_hash

    changed = set()
    for key in keys:
        cls = ASSET_CONFIGS.get(key.to_user_string())
        if cls is None:
            continue
        wanted = dict_hash(cls(**asset_config.get(key.to_user_string(), {})).model_dump())
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition_key] if partition_key else None), limit=1
        ).records
        if records:
            entry = records[0].asset_materialization.metadata.get(CONFIG_HASH)
            if entry is None or entry.value != wanted:
                changed.add(key)
    return changed


def run_job(paths: DataPaths, job_name: str, partition_key: str | None = None, only_stale: bool = True,
            assets: list[str] | None = None, asset_config: dict[str, dict] | None = None) -> dg.JobExecutionResult | None:
    """Execute one job (for one partition) through its executor; raise if any step fails.

    ``only_stale`` selects what Dagster reports stale or missing, plus assets whose last run used another
    config than ``asset_config`` (asset name -> config values) and their dependants; ``assets`` narrows to those names.
    """
    from hm_recsys import definitions

    asset_config = asset_config or {}
    instance = instance_for(paths)
    defs = definitions.build_definitions(paths)
    job_keys = defs.resolve_job_def(job_name).asset_layer.executable_asset_keys
    if only_stale:
        changed = reconfigured(instance, defs, job_keys, partition_key, asset_config)
        if changed:
            changed |= set(dg.AssetSelection.assets(*changed).downstream().resolve(defs.resolve_asset_graph()))
        selection = sorted(set(stale_or_missing(instance, defs, job_name, partition_key)) | (changed & set(job_keys)))
    else:
        selection = sorted(job_keys)
    if assets is not None:
        selection = [k for k in selection if k.to_user_string() in assets]
    if not selection:
        print(f"  {job_name} {partition_key or ''}: everything up to date")
        return None
    names = {k.to_user_string() for k in selection}
    run_config = QUIET | {"ops": {n: {"config": c} for n, c in asset_config.items() if n in names}}
    tags = {"dagster/partition": partition_key} if partition_key else {}
    result = dg.execute_job(
        dg.reconstructable(getattr(definitions, job_name)),
        instance,
        run_config=run_config,
        tags=tags,
        asset_selection=selection,
    )
    if not result.success:
        failed = [e.step_key for e in result.all_events if e.is_step_failure]
        raise RunFailed(f"{job_name} {partition_key or ''} failed in {failed}; see run {result.run_id} in `dagster dev`")
    return result


def upstream_asset_names(paths: DataPaths, asset: str) -> list[str]:
    """``asset`` and everything it depends on (by name)."""
    from hm_recsys import definitions

    graph = definitions.build_definitions(paths).resolve_asset_graph()
    return sorted(k.to_user_string() for k in dg.AssetSelection.assets(asset).upstream().resolve(graph))


def reset(paths: DataPaths) -> None:
    shutil.rmtree(paths.dagster_home, ignore_errors=True)
