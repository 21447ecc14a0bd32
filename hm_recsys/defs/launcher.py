"""The CLI's side of the platform: the same instance, conditions and runs the UI and daemon use.

The CLI decides nothing itself. It records the raw files' content versions, asks Dagster's automation
(``dg.evaluate_automation_conditions``, the conditions of ``defs/automation.py``) what is missing or
unsynced, runs exactly that through the multiprocess executor, and asks again until nothing is left:
one command converges to the from-scratch result, however many layers a change crosses.

Around that: one command per data folder at a time (a lock file), and recovery from a command that
was killed (its runs marked failed, their pool slots freed, half-written temporary files removed).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Iterator

import dagster as dg

from hm_recsys.paths import DATA_DIR_ENV, DataPaths

INSTANCE_TEMPLATE = Path(__file__).with_name("instance.yaml")
LOCK_FILE = ".hm_recsys.lock"
LAUNCHER_TAG = "hm_recsys/launcher"
IN_PROGRESS = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
               dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
# Step events go to the instance (the UI shows them); the terminal gets the one-line reason instead.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
HISTORY = dg.AssetKey("history")
MAX_LAUNCHES = 1000  # a condition that never settles (a run that leaves its asset unsynced) stops here


class PipelineError(RuntimeError):
    """A run failed; the message is the reason (a data error names file, column, row and value)."""


class FolderBusy(RuntimeError):
    pass


def write_instance_config(home: Path) -> Path:
    """``<data>/dagster_home/dagster.yaml`` from the template: storage defaults to the home folder itself."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(INSTANCE_TEMPLATE.read_text())
    return home


def instance_for(paths: DataPaths) -> dg.DagsterInstance:
    """The persistent SQLite instance under the data folder, with the ``gpu`` pool limit set explicitly."""
    from hm_recsys.defs.jobs import GPU_POOL, gpu_pool_limit

    home = write_instance_config(paths.dagster_home)
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ[DATA_DIR_ENV] = str(paths.root)
    instance = dg.DagsterInstance.get()
    instance.event_log_storage.set_concurrency_slots(GPU_POOL, gpu_pool_limit())
    return instance


@contextlib.contextmanager
def folder_lock(paths: DataPaths, what: str) -> Iterator[int]:
    """Hold the data folder for one command (or for ``dagster dev``: the fd survives exec)."""
    paths.root.mkdir(parents=True, exist_ok=True)
    fd = os.open(paths.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise FolderBusy(f"data folder {paths.root} is busy: {holder} is using it; wait for it to finish "
                         f"(or use the Dagster UI it serves)") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"hm-recsys {what} (pid {os.getpid()})\n".encode(), 0)
    try:
        yield fd
    finally:
        os.close(fd)


def recover(instance: dg.DagsterInstance, paths: DataPaths) -> list[str]:
    """With the folder lock held nothing else runs here: runs still in progress were killed.

    Mark them failed, free their ``gpu`` slots and remove the temporary files their steps left.
    Returns one line per thing done, for the terminal.
    """
    lines = []
    for run in instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS)):
        instance.report_run_failed(run, message="its process is gone (killed?); marked failed by hm-recsys on the next start")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        lines.append(f"run {run.run_id[:8]} ({run.job_name}) was left {run.status.value} by a killed command: marked failed, pool slots freed")
    for tmp in [*paths.root.rglob(".*.tmp"), *paths.root.rglob(".*.old")]:
        if paths.dagster_home in tmp.parents:
            continue
        if tmp.is_dir():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        lines.append(f"removed leftover temporary {tmp.relative_to(paths.root)}")
    return lines


def observe_raw(instance: dg.DagsterInstance, defs: dg.Definitions) -> list[str]:
    """Record each raw input's content version when it differs from the last one recorded."""
    from hm_recsys.defs.assets.raw import RAW_ASSETS, raw_version

    data = defs.resources["data"]
    changed = []
    for asset in RAW_ASSETS:
        version = raw_version(data, asset)
        last = instance.fetch_observations(dg.AssetKey(asset), limit=1).records
        if last and last[0].asset_observation.tags.get("dagster/data_version") == version:
            continue
        instance.report_runless_asset_event(dg.AssetObservation(asset_key=asset, tags={"dagster/data_version": version}))
        changed.append(asset)
    return changed


def _failure_reason(result: dg.ExecuteJobResult) -> str:
    """The innermost error of the first failed step: the user's own message, not Dagster's wrapping."""
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            while error.cause is not None:
                error = error.cause
            lines = [line.strip() for line in error.message.strip().splitlines() if line.strip()]
            message = " ".join(lines[:4]) if lines else error.cls_name
            return f"{event.step_key}: {message}"
    return "the run failed before any step ran (see the run in the Dagster UI)"


def _job_for(defs: dg.Definitions, key: dg.AssetKey, partition: str | None) -> str:
    if partition is None:
        return "tables_job"
    return "ranking_job" if key in defs.resolve_job_def("ranking_job").asset_layer.executable_asset_keys else "week_job"


def execute(paths: DataPaths, job: str, assets: list[dg.AssetKey], partition: str | None,
            instance: dg.DagsterInstance) -> dg.ExecuteJobResult:
    from hm_recsys import definitions

    tags = {LAUNCHER_TAG: "cli"} | ({"dagster/partition": partition} if partition else {})
    result = dg.execute_job(dg.reconstructable(getattr(definitions, job)), instance, run_config=QUIET, tags=tags,
                            asset_selection=assets)
    if not result.success:
        raise PipelineError(_failure_reason(result))
    return result


def _exit_with_parent(parent: int) -> None:
    """A run process whose command was killed ends too, rather than go on orchestrating unlocked."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _execute_in_run_process(root: str, job: str, assets: list[str], partition: str | None) -> None:
    """``execute`` in a run process of the pool; errors come back as one picklable ``PipelineError``."""
    try:
        execute(DataPaths(Path(root)), job, [dg.AssetKey.from_user_string(a) for a in assets], partition,
                dg.DagsterInstance.get())
    except PipelineError:
        raise
    except Exception as error:  # noqa: BLE001 -- Dagster's own errors may not pickle; keep their text
        raise PipelineError(f"{type(error).__name__}: {error}") from None


def run_processes(n: int):
    """``n`` processes, each executing one run at a time, as the daemon gives each run a process.

    Two ``execute_job`` calls in threads of one process can deadlock in ``logging`` (a run starting
    reconfigures the handlers while the other run's event handler holds its lock): seen in CI.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=max(1, n), mp_context=multiprocessing.get_context("spawn"),
                               initializer=_exit_with_parent, initargs=(os.getpid(),))


Group = tuple  # (partition or "", a week run (not ranking), job, ...): drive reads the first two


def _needs(graph, keys: list[dg.AssetKey], partition: str | None) -> set[tuple[dg.AssetKey, str | None]]:
    """The (asset, partition) pairs a run of ``keys`` reads that the run itself does not build."""
    needs = set()
    for key in keys:
        for parent in graph.get(key).parent_keys:
            if parent in keys or not graph.get(parent).is_materializable:
                continue
            if graph.get(parent).partitions_def is None or partition is None:
                needs.add((parent, None))
                continue
            upstream = graph.get_parent_partition_keys_for_child(partition, parent, key).partitions_subset
            needs.update((parent, p) for p in upstream.get_partition_keys())
    return needs


def drive(request, graph, launch, max_runs: int, max_launches: int = MAX_LAUNCHES) -> int:
    """Launch what ``request()`` asks for, asking again whenever a run ends, until it asks for nothing.

    As the daemon would: up to ``max_runs`` runs at once, each group once nothing in flight or still
    requested builds what it reads. Week runs go one at a time (they share files the asset graph does
    not show: the weekly shards, the tower chain's links) and before ranking runs; a ranking run
    (CatBoost, about one core) goes beside a week run, where the second core was idle (at full scale a
    week run is ~25 min, its ranking run ~20). The first failure
    stops new launches; the runs in flight finish, then it is raised. Returns the number of runs.
    """
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    running: dict = {}  # future -> (group, what its run builds)
    errors, launched = [], 0
    with ThreadPoolExecutor(max_workers=max(1, max_runs)) as pool:
        while True:
            groups = {} if errors or len(running) >= max_runs else request()
            builds = {g: {(k, g[0] or None) for k in keys} for g, keys in groups.items()}
            in_flight = set().union(*(b for _, b in running.values()))
            for g in sorted(groups, key=lambda g: (not g[1], g)):
                others = in_flight.union(*(b for h, b in builds.items() if h != g))
                week_running = any(h[1] for h, _ in running.values())
                if len(running) >= max_runs or builds[g] & in_flight or (g[1] and week_running) \
                        or _needs(graph, groups[g], g[0] or None) & others:
                    continue
                if launched >= max_launches:
                    raise PipelineError(f"automation still requests work after {max_launches} runs; see the runs in the Dagster UI")
                running[pool.submit(launch, g, groups[g])] = (g, builds[g])
                in_flight |= builds[g]
                launched += 1
            if not running:
                if groups and not errors:
                    raise PipelineError(f"requested runs wait on each other: {', '.join(g[0] or 'tables' for g in sorted(groups))}")
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                running.pop(future)
                if future.exception() is not None:
                    errors.append(future.exception())
    if errors:
        raise errors[0]
    return launched


def settle(paths: DataPaths, *, eval_weeks: int, say=print) -> int:
    """Run what automation requests until it requests nothing; returns the number of runs."""
    from hm_recsys.definitions import build_definitions

    instance = instance_for(paths)
    for line in recover(instance, paths):
        say(line)
    defs = build_definitions(paths, eval_weeks=eval_weeks, hold_failed=False)
    changed = observe_raw(instance, defs)
    if changed:
        say(f"raw inputs with a new content version: {', '.join(changed)}")
    graph = defs.resolve_asset_graph()
    max_runs = instance.get_concurrency_config().run_queue_config.max_concurrent_runs

    lines = threading.Lock()  # two runs' lines, each whole

    def launch(group: Group, keys: list[dg.AssetKey]) -> None:
        partition, _, job = group[:3]
        t0 = time.perf_counter()
        with lines:
            say(f"{partition or 'tables'}: {', '.join(sorted(k.to_user_string() for k in keys))}")
        processes.submit(_execute_in_run_process, str(paths.root), job, [k.to_user_string() for k in keys],
                         partition or None).result()
        with lines:
            say(f"{partition or 'tables'}: done in {time.perf_counter() - t0:.0f}s")

    def request() -> dict[Group, list[dg.AssetKey]]:
        requested = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        groups: dict[Group, list[dg.AssetKey]] = defaultdict(list)
        for key in graph.get_all_asset_keys():
            for partition in requested.get_requested_partitions(key):
                job = _job_for(defs, key, partition)
                # A week's history (its tables, seconds) is a run of its own: the ranking run reads it and
                # need not wait for the whole week.
                groups[(partition or "", job != "ranking_job", job, key == HISTORY)].append(key)
        return groups

    with run_processes(max_runs) as processes:
        return drive(request, graph, launch, max_runs)
