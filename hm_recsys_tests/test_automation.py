"""The automation condition every asset uses (defs/automation.py) and the one module that reaches into
Dagster internals for it (defs/staleness.py): pinned on a toy graph, in process."""

import dagster as dg
import pytest

from hm_recsys.defs.automation import rebuild
from hm_recsys.defs.staleness import Unsynced

WEEKS = dg.WeeklyPartitionsDefinition(start_date="2020-08-05", end_date="2020-09-30", day_offset=3)


def toy_defs(b_version: str = "1", window: int = 2, c_version: str = "1") -> dg.Definitions:
    condition = rebuild(window, hold_failed=False)

    @dg.observable_source_asset(name="src")
    def src():
        return dg.DataVersion("unused")

    @dg.asset(deps=[src], code_version="1", automation_condition=condition)
    def a():
        return dg.MaterializeResult(data_version=dg.DataVersion(STATE["a"]))

    @dg.asset(deps=[a], code_version=b_version, automation_condition=condition, partitions_def=WEEKS)
    def b():
        return dg.MaterializeResult(data_version=dg.DataVersion("b"))

    @dg.asset(deps=[b], code_version=c_version, automation_condition=condition, partitions_def=WEEKS)
    def c():
        return dg.MaterializeResult(data_version=dg.DataVersion("c"))

    return dg.Definitions(assets=[src, a, b, c])


STATE = {"a": "a1"}  # what `a` writes; a test changes it to make a rebuild produce new bytes


def requested(defs, instance) -> dict[str, set]:
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    return {k.to_user_string(): set(result.get_requested_partitions(k)) for k in map(dg.AssetKey, "abc")
            if result.get_requested_partitions(k)}


def observe(instance, version: str) -> None:
    instance.report_runless_asset_event(dg.AssetObservation(asset_key="src", tags={"dagster/data_version": version}))


def run(defs, instance, wanted: dict[str, set]) -> None:
    if "a" in wanted:
        assert dg.materialize([*defs.assets], selection=["a"], instance=instance).success
    for key in sorted(wanted.get("b", set()) | wanted.get("c", set())):
        selection = [k for k in "bc" if key in wanted.get(k, ())]
        assert dg.materialize([*defs.assets], selection=selection, partition_key=key, instance=instance).success


def build_everything(defs, instance) -> None:
    """Observe the source and run the two rounds automation asks for (a, then b and c)."""
    observe(instance, "v1")
    run(defs, instance, requested(defs, instance))
    run(defs, instance, requested(defs, instance))


@pytest.fixture
def instance():
    STATE["a"] = "a1"
    with dg.instance_for_test() as inst:
        yield inst


def test_missing_then_synced_then_unsynced_by_data_then_by_code(instance):
    defs = toy_defs()
    observe(instance, "v1")
    # missing: first the unpartitioned asset (b waits: its input is missing and cannot share a run with it) ...
    assert requested(defs, instance) == {"a": {None}}
    run(defs, instance, {"a": {None}})
    # ... then only the newest 2 weekly partitions of b and c (the window), in one run per week
    newest = {"2020-09-16", "2020-09-23"}
    assert requested(defs, instance) == {"b": newest, "c": newest}
    run(defs, instance, {"b": newest, "c": newest})
    assert requested(defs, instance) == {}  # nothing changed: nothing to do

    observe(instance, "v2")  # a raw input changed content
    assert requested(defs, instance) == {"a": {None}}  # b waits for its unsynced input
    run(defs, instance, {"a": {None}})  # a rebuilds to the same bytes (STATE unchanged)
    assert requested(defs, instance) == {}  # same data version: b stays in sync

    observe(instance, "v3")
    STATE["a"] = "a2"  # this time a's output changes ...
    run(defs, instance, requested(defs, instance))
    assert requested(defs, instance) == {"b": newest}  # ... so b is out of sync (c follows if b's output changes)
    run(defs, instance, {"b": newest})

    recoded = toy_defs(b_version="2")  # b's logic (or config) changed
    assert requested(recoded, instance) == {"b": newest}


def test_nothing_runs_below_an_unsynced_ancestor(instance):
    """c's own code changed, but a (two hops up) is out of sync: c waits, whatever b's stale status says."""
    defs = toy_defs()
    build_everything(defs, instance)
    observe(instance, "v2")
    recoded = toy_defs(c_version="2")
    assert requested(recoded, instance) == {"a": {None}}
    STATE["a"] = "a2"
    run(recoded, instance, {"a": {None}})
    newest = {"2020-09-16", "2020-09-23"}
    assert requested(recoded, instance) == {"b": newest, "c": newest}


def test_unsynced_is_state_not_an_event(instance):
    """Missed ticks do not matter: a fresh evaluation (no cursor) still sees what is out of sync."""
    defs = toy_defs()
    build_everything(defs, instance)
    observe(instance, "v2")
    observe(instance, "v3")
    for _ in range(2):  # however often asked, until rebuilt
        assert "a" in requested(defs, instance)
    assert Unsynced().name == "unsynced"


def test_a_partition_materialized_during_a_tick_is_not_missing(instance):
    """Dagster's status cache loses a materialization when the tick loaded the asset's record before a run
    materialized partition X and another run planned partition Y before the cache was updated: X stays missing in
    the cache for good (built twice on every tiny backtest). ``Missing`` reads the event log: X is not rebuilt."""
    from dagster._core.loader import LoadingContextForTest
    from dagster._core.storage.event_log.base import AssetRecord
    from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

    defs = toy_defs()
    observe(instance, "v1")
    run(defs, instance, {"a": {None}})
    x, y = "2020-09-16", "2020-09-23"
    run(defs, instance, {"b": {"2020-09-09"}})  # an older week (outside the window), and b's cache stored
    get_and_update_asset_status_cache_value(instance, dg.AssetKey("b"), WEEKS)
    tick = LoadingContextForTest(instance)
    AssetRecord.blocking_get(tick, dg.AssetKey("b"))  # the tick reads b's record ...
    run(defs, instance, {"b": {x}})  # ... a run materializes b for X ...

    @dg.asset(name="b", partitions_def=WEEKS)
    def b_fails():
        raise RuntimeError("planned, then failed")

    assert not dg.materialize([b_fails], partition_key=y, instance=instance, raise_on_error=False).success  # ... one plans Y
    cache = get_and_update_asset_status_cache_value(instance, dg.AssetKey("b"), WEEKS, loading_context=tick)
    assert x not in cache.deserialize_materialized_partition_subsets(WEEKS).get_partition_keys()  # Dagster's view
    assert x in instance.get_materialized_partitions(dg.AssetKey("b"))
    assert requested(defs, instance) == {"b": {y}, "c": {x, y}}  # Y (failed) again with c, c below X; not X itself


def test_a_wider_window_takes_older_partitions(instance):
    defs = toy_defs(window=4)
    observe(instance, "v1")
    run(defs, instance, requested(defs, instance))
    assert requested(defs, instance)["b"] == {"2020-09-02", "2020-09-09", "2020-09-16", "2020-09-23"}


def test_raw_files_sensor_reloads_only_after_the_new_raw_versions_are_recorded(tiny_world, monkeypatch):
    """A new week must not reach automation before the changed raw files mark the tables unsynced: the
    location reload that adds the week's partitions waits until every raw file has been observed."""
    from hm_recsys.defs import sensors
    from hm_recsys.defs.resources import DataResource

    reloads = []
    monkeypatch.setattr(sensors, "_reload_location", lambda: reloads.append(1) or True)
    sensor = sensors.build_raw_files_sensor({"weeks": [], "config": None}, None)  # built before the data changed
    data = DataResource(data_dir=str(tiny_world.root))
    cursor, observed, said = None, [], []
    for _ in range(4):
        result = sensor(dg.build_sensor_context(cursor=cursor, resources={"data": data}))
        observed.append(len(result.asset_events))
        said.append(result.skip_reason.skip_message)  # it never requests runs: every tick says what it did
        cursor = result.cursor
        if reloads:
            break
    # tick 1: files seen (waiting for them to hold still); tick 2: observations; tick 3: reload
    assert len(observed) == 3 and observed[0] == 0 and observed[1] > 0 and observed[2] == 0 and reloads == [1]
    assert "hashed once it holds still" in said[0] and "raw_transactions" in said[0]
    assert "recorded a new content version" in said[1] and "reload once the raw files are observed" in said[1]
    assert said[2] == f"data weeks or config changed: reloading code location {sensors.LOCATION}"
    reloaded = sensors.build_raw_files_sensor(sensors.loaded_state(data, None), None)  # the definitions it reloads
    quiet = reloaded(dg.build_sensor_context(cursor=cursor, resources={"data": data}))
    assert not quiet.asset_events and quiet.skip_reason.skip_message == "no raw file changed since the last tick"


def test_a_weeks_longest_chain_starts_before_the_steps_beside_it(tiny_world):
    """Among ready steps the multiprocess executor starts the higher ``dagster/priority`` first: the shards ->
    towers -> top-100 chain must outrank every source and baseline, or a week's run waits on them."""
    from hm_recsys.definitions import build_definitions

    defs = build_definitions(tiny_world)

    def priority(name: str) -> int:
        return int(defs.get_assets_def(name).op.tags.get("dagster/priority", 0))

    chain = ("tfrecords", "two_tower_model", "two_tower_finetuned", "retrieval_candidates")
    beside = ("history", "als_candidates", "same_product_candidates", "repurchase_candidates", "popular_candidates",
              "bought_together_candidates", "age_popular_candidates", "bpr_candidates", "popular_all_time", "popular_last_week",
              "repurchase_popular")
    assert min(map(priority, chain)) > max(map(priority, beside))


def test_one_automation_sensor_per_stage_whose_runs_carry_the_stage(tiny_world):
    """Every materializable asset is targeted by exactly one ``rebuild_<stage>`` sensor, which requests runs
    (not backfills) tagged with its stage: the run queue lets one week run go at a time (dagster.yaml)."""
    from hm_recsys.definitions import build_definitions
    from hm_recsys.defs.jobs import STAGE_TAG, STAGES

    defs = build_definitions(tiny_world)
    graph = defs.resolve_asset_graph()
    targeted: dict = {}
    for stage in STAGES:
        sensor = defs.get_sensor_def(f"rebuild_{stage}")
        assert sensor.run_tags == {STAGE_TAG: stage} and not sensor.emit_backfills
        for key in sensor.asset_selection.resolve(graph):
            targeted.setdefault(key, []).append(stage)
    materializable = {k for k in graph.get_all_asset_keys() if graph.get(k).is_materializable}
    assert set(targeted) == materializable and all(len(v) == 1 for v in targeted.values())
    assert targeted[dg.AssetKey("two_tower_model")] == ["week"] and targeted[dg.AssetKey("final")] == ["ranking"]
    assert targeted[dg.AssetKey("ranker_features")] == ["features"]  # the next week's run need not wait for it
    assert STAGES == ("tables", "week", "features", "ranking")
    for stage in STAGES:
        assert defs.resolve_job_def(f"{stage}_job").tags[STAGE_TAG] == stage


def test_automation_settings_come_from_the_environment():
    from hm_recsys.defs import automation

    assert automation.settings({}) == {"eval_weeks": 1, "interval_s": 30, "hold_failed": True}
    env = {"HM_EVAL_WEEKS": "3", "HM_AUTOMATION_INTERVAL_S": "5", "HM_RETRY_FAILED": "1"}
    assert automation.settings(env) == {"eval_weeks": 3, "interval_s": 5, "hold_failed": False}
    with pytest.raises(ValueError, match="HM_EVAL_WEEKS='x': expected a whole number"):
        automation.settings({"HM_EVAL_WEEKS": "x"})
    with pytest.raises(ValueError, match="HM_AUTOMATION_INTERVAL_S=0: expected at least 1"):
        automation.settings({"HM_AUTOMATION_INTERVAL_S": "0"})


def test_the_embedded_instance_queues_runs_limits_week_runs_and_monitors_run_processes(tmp_path, monkeypatch):
    """The repository's dagster.yaml (the embedded default): queued runs (two at once, one week run), the
    ``gpu`` pool's limit, run monitoring with the health-checking launcher, run retries; SQLite storage in
    the data folder, whose dagster.yaml links to the repository's and is never rewritten."""
    from hm_recsys.defs.client import REPO_ROOT, embedded_home
    from hm_recsys.defs.run_launcher import MonitoredRunLauncher
    from hm_recsys.paths import DataPaths

    paths = DataPaths(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(embedded_home(paths)))
    assert (paths.dagster_home / "dagster.yaml").resolve() == REPO_ROOT / "dagster.yaml"
    with dg.DagsterInstance.get() as instance:
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 2
        assert [dict(limit) for limit in queue.tag_concurrency_limits] == [{"key": "hm_recsys/stage", "value": "week", "limit": 1}]
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        assert isinstance(instance.run_launcher, MonitoredRunLauncher)
        assert instance.run_monitoring_enabled and instance.run_retries_enabled and instance.run_retries_max_retries == 1
        instance.get_runs()  # the SQLite storage opens under the given folder
    assert (paths.dagster_home / "history" / "runs.db").exists()
    mine = DataPaths(tmp_path / "mine")
    (mine.dagster_home).mkdir(parents=True)
    (mine.dagster_home / "dagster.yaml").write_text("telemetry: {enabled: false}\n")
    embedded_home(mine)  # a file of the user's is kept
    assert (mine.dagster_home / "dagster.yaml").read_text() == "telemetry: {enabled: false}\n"


def test_a_run_whose_code_server_is_gone_is_reported_failed_after_the_grace(monkeypatch):
    """The health check run monitoring uses: a run launched by a code server that no longer answers (its
    command was killed) counts as running for ``GRACE_S``, then as failed; a run it cannot place, as running."""
    import json
    import socket

    from hm_recsys.defs import run_launcher

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    @dg.op
    def noop():
        return None

    @dg.job
    def job():
        noop()

    with dg.instance_for_test(overrides={"run_launcher": {"module": "hm_recsys.defs.run_launcher",
                                                          "class": "MonitoredRunLauncher"}}) as instance:
        launcher = instance.run_launcher
        gone = instance.create_run_for_job(job, tags={".dagster/grpc_info": json.dumps({"host": "127.0.0.1", "port": port})})
        unplaced = instance.create_run_for_job(job)
        monkeypatch.setattr(run_launcher, "TIMEOUT_S", 2)
        assert launcher.check_run_worker_health(gone).status.value == "RUNNING"  # first miss: within the grace
        assert launcher.check_run_worker_health(unplaced).status.value == "RUNNING"
        monkeypatch.setattr(run_launcher, "GRACE_S", 0.0)
        result = launcher.check_run_worker_health(gone)
        assert result.status.value == "FAILED" and "has not run it" in result.msg


def test_an_input_rebuilt_during_a_tick_is_compared_by_its_new_materialization(instance):
    """The tick loads the records first; an input whose materializations were wiped and which a run then rebuilt to
    the same bytes looked missing to the tick, so its dependants looked unsynced while the input looked present and
    done (three weeks of towers retrained for nothing). ``live_resolver`` reads the input's new record."""
    import datetime as dt

    from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView
    from dagster._core.definitions.data_version import StaleStatus
    from dagster._core.definitions.temporal_context import TemporalContext
    from dagster._core.storage.event_log.base import AssetRecord

    from hm_recsys.defs.staleness import live_resolver

    defs = toy_defs()
    build_everything(defs, instance)
    graph = defs.resolve_asset_graph()
    instance.wipe_assets([dg.AssetKey("a")])  # as a test wipes the tables to have them rebuilt
    tick = AssetGraphView(temporal_context=TemporalContext(effective_dt=dt.datetime.now(dt.timezone.utc), last_event_id=None),
                          instance=instance, asset_graph=graph)
    AssetRecord.blocking_get(tick, dg.AssetKey("a"))  # the tick's prefetch: no record of a
    run(defs, instance, {"a": {None}})  # a run rebuilds a to the same bytes during the tick
    assert live_resolver(tick, graph).get_status(dg.AssetKey("b"), "2020-09-23") == StaleStatus.FRESH
    assert requested(defs, instance) == {}
