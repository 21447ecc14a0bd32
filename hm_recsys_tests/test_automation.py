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
    cursor, observed = None, []
    for _ in range(4):
        result = sensor(dg.build_sensor_context(cursor=cursor, resources={"data": data}))
        observed.append(len(result.asset_events))
        cursor = result.cursor
        if reloads:
            break
    # tick 1: files seen (waiting for them to hold still); tick 2: observations; tick 3: reload
    assert len(observed) == 3 and observed[0] == 0 and observed[1] > 0 and observed[2] == 0 and reloads == [1]


def test_a_weeks_longest_chain_starts_before_the_steps_beside_it(tiny_world):
    """Among ready steps the multiprocess executor starts the higher ``dagster/priority`` first: the shards ->
    towers -> top-100 chain must outrank every source and baseline, or a week's run waits on them."""
    from hm_recsys.definitions import build_definitions

    defs = build_definitions(tiny_world)

    def priority(name: str) -> int:
        return int(defs.get_assets_def(name).op.tags.get("dagster/priority", 0))

    chain = ("tfrecords", "two_tower_model", "two_tower_finetuned", "retrieval_candidates")
    beside = ("history", "als_candidates", "same_product_candidates", "repurchase_candidates", "popular_candidates",
              "bought_together_candidates", "age_popular_candidates", "popular_all_time", "popular_last_week",
              "repurchase_popular")
    assert min(map(priority, chain)) > max(map(priority, beside))


def test_runs_wait_for_what_they_read_and_a_ranking_run_goes_beside_a_week_run():
    """``launcher.drive``: the tables run first; a ranking run of W2 (which reads W1's week) after W1; week
    runs one at a time; W2's ranking and week runs side by side (two runs, as the instance allows); a run
    still in flight is never launched again though automation asks for it; the first failure stops launches."""
    import threading
    import time

    from hm_recsys.defs.launcher import PipelineError, drive

    @dg.asset
    def a():
        return None

    @dg.asset(deps=[a], partitions_def=WEEKS)
    def b():
        return None

    @dg.asset(deps=[dg.AssetDep(b, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1))],
              partitions_def=WEEKS)
    def r():
        return None

    graph = dg.Definitions(assets=[a, b, r]).resolve_asset_graph()
    w1, w2 = WEEKS.get_partition_keys()[1:3]
    tables, week1, week2, ranking2 = ("", True, "tables_job"), (w1, True, "week_job"), (w2, True, "week_job"), (w2, False, "ranking_job")
    groups = {tables: [dg.AssetKey("a")], week1: [dg.AssetKey("b")], week2: [dg.AssetKey("b")], ranking2: [dg.AssetKey("r")]}
    events, finished, lock = [], set(), threading.Lock()

    def request():  # an automation that does not see runs in flight: asks for everything not finished
        with lock:
            return {g: keys for g, keys in groups.items() if g not in finished}

    def launch(group, keys):
        with lock:
            events.append(("start", group))
        time.sleep(0.3)
        with lock:
            events.append(("end", group))
            finished.add(group)

    assert drive(request, graph, launch, max_runs=2) == 4
    assert sorted(g for what, g in events if what == "start") == sorted(groups)  # each launched once
    at = {(what, g): i for i, (what, g) in enumerate(events)}
    assert at[("end", tables)] < min(at[("start", g)] for g in (week1, week2, ranking2))
    assert at[("end", week1)] < at[("start", ranking2)]  # r(w2) reads b(w1)
    assert at[("end", week1)] < at[("start", week2)]  # week runs one at a time
    assert at[("start", ranking2)] < at[("end", week2)] and at[("start", week2)] < at[("end", ranking2)]  # side by side

    def fail_w1(group, keys):
        if group == week1:
            with lock:
                finished.add(group)
            raise PipelineError("w1 broke")
        launch(group, keys)

    events.clear()
    finished.clear()
    with pytest.raises(PipelineError, match="w1 broke"):
        drive(request, graph, fail_w1, max_runs=2)
    assert ("start", week2) not in events and ("start", ranking2) not in events

    with pytest.raises(PipelineError, match="still requests work after 3 runs"):
        drive(lambda: {tables: groups[tables]}, graph, lambda g, keys: None, max_runs=2, max_launches=3)


def test_the_gpu_pool_holds_one_step_on_a_card_and_holds_nothing_back_without_one(monkeypatch):
    import torch

    from hm_recsys.defs.jobs import MAX_CONCURRENT, gpu_pool_limit

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert gpu_pool_limit() == 1
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_pool_limit() == MAX_CONCURRENT == 2


def test_each_run_has_a_process_of_its_own_which_ends_with_its_command(tmp_path):
    """Two runs never share a process (``execute_job`` in two threads deadlocked in ``logging`` in CI), and a
    run process whose command is killed (that pid alone, kill -9) ends instead of orchestrating on."""
    import os
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    script = tmp_path / "command.py"
    script.write_text(textwrap.dedent("""
        import os, sys, time
        from hm_recsys.defs.launcher import run_processes

        if __name__ == "__main__":
            with run_processes(2) as processes:
                a, b = processes.submit(time.sleep, 0.5), processes.submit(os.getpid)
                pids = {processes.submit(os.getpid).result(), b.result()}
                print(os.getpid(), *pids, flush=True)
                processes.submit(time.sleep, 600).result()
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        command, *runs = map(int, proc.stdout.readline().split())
        assert command not in runs and len(set(runs)) >= 1
        workers = {int(p) for p in subprocess.run(["pgrep", "-P", str(command)], capture_output=True, text=True).stdout.split()}
        assert set(runs) <= workers and len(workers) >= 2
        os.kill(command, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.time() + 30
        while any(os.path.exists(f"/proc/{p}") and "Z" not in open(f"/proc/{p}/stat").read().split()[2] for p in workers):
            assert time.time() < deadline, "a run process outlived its killed command"
            time.sleep(0.5)
    finally:
        proc.kill()
