"""The CLI's side of the platform: a client of the instance, like the UI.

Nothing here decides or launches a run. The daemon does, for every launch path: its automation sensors
(``defs/automation.py``) request what is missing or unsynced, the instance's run coordinator queues it,
its run launcher starts it, run monitoring and run retries handle a run whose process died. The CLI
records the raw files' content versions, makes sure a daemon serves the instance (it starts one for the
embedded default when none is running, with the window the command needs), follows the runs, and
returns once automation has evaluated with nothing left to request and no run is in flight.

Instances: ``$DAGSTER_HOME`` when set (the user's ``dagster.yaml``, used as it is, e.g. the cluster
profile in ``deploy/cluster``); else the embedded default: ``<data>/dagster_home``, whose ``dagster.yaml``
is a link to the repository's (made once; a file of the user's there is kept).
"""

from __future__ import annotations

import ctypes
import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import dagster as dg

from hm_recsys.defs import automation
from hm_recsys.defs.jobs import IN_PROGRESS, STAGES
from hm_recsys.defs.sensors import LOCATION
from hm_recsys.paths import DATA_DIR_ENV, DataPaths
from hm_recsys.schema import TRANSACTIONS_CSV

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKSPACE = REPO_ROOT / "workspace.yaml"
PID_FILE = "daemon.pid"  # embedded default only: the daemon (or `dagster dev`) serving the data folder
# The automation sensors' interval in a daemon the CLI starts (HM_AUTOMATION_INTERVAL_S overrides it). Each tick
# costs the code server CPU whatever the data's size: on a small world steps take seconds and a short interval
# keeps the runs moving; at full scale steps take minutes and the four sensors' ticks (5.7 s of wall every ~8.5 s
# at 5 s) cost more than the latency they save: `cli_interval_s`.
CLI_INTERVAL_S = 5
LARGE_INTERVAL_S = 30  # Dagster's own default, as under `dagster dev`
LARGE_RAW_BYTES = 1 << 30  # a raw transactions file above this is a large world (demo: 105 MB, full: 3.6 GB)
POLL_S = 1.0
HEARTBEAT_FRESH_S = 90  # a deployment's daemon beats every 30 s
CODE_SERVER_HOST = "127.0.0.1"
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
WILL_RETRY = "dagster/will_retry"
RETRY_TAG_WAIT_S = 15


class PipelineError(RuntimeError):
    """A run failed; the message is the reason (a data error names file, column, row and value)."""


class FolderBusy(RuntimeError):
    pass


@dataclass(frozen=True)
class Instance:
    home: Path
    embedded: bool  # <data>/dagster_home: one machine, SQLite


def embedded_home(paths: DataPaths) -> Path:
    """``<data>/dagster_home`` with its ``dagster.yaml``: a link to the repository's unless one is there."""
    paths.dagster_home.mkdir(parents=True, exist_ok=True)
    link = paths.dagster_home / "dagster.yaml"
    if not link.exists() and not link.is_symlink():
        link.symlink_to(REPO_ROOT / "dagster.yaml")
    return paths.dagster_home


def use_instance(paths: DataPaths) -> Instance:
    """Point this process (and its children) at the instance; no ``dagster.yaml`` is ever rewritten."""
    os.environ[DATA_DIR_ENV] = str(paths.root)
    if os.environ.get("DAGSTER_HOME"):
        home = Path(os.environ["DAGSTER_HOME"]).resolve()
        if not (home / "dagster.yaml").is_file():
            raise PipelineError(f"DAGSTER_HOME={home} has no dagster.yaml")
        return Instance(home, embedded=False)
    os.environ["DAGSTER_HOME"] = str(embedded_home(paths))
    return Instance(paths.dagster_home, embedded=True)


# --- the daemon ------------------------------------------------------------------------------------

def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return "dagster" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError):
        return False


def serving_process(paths: DataPaths) -> str | None:
    """What serves the embedded instance now (``pid N: what``), from its pid file, or None."""
    try:
        pid, _, what = (paths.dagster_home / PID_FILE).read_text().partition(" ")
        return f"pid {pid}: {what.strip()}" if _alive(int(pid)) else None
    except (OSError, ValueError):
        return None


def claim(paths: DataPaths, what: str, pid: int | None = None) -> None:
    """Record the process serving the embedded instance; refuses while another one does."""
    holder = serving_process(paths)
    if holder:
        raise FolderBusy(f"data folder {paths.root} is served by {holder}; use it (or stop it first)")
    (paths.dagster_home / PID_FILE).write_text(f"{pid or os.getpid()} {what}\n")


def _die_with_parent() -> None:
    """A daemon the CLI started ends with the CLI, however the CLI ends (Linux prctl PR_SET_PDEATHSIG)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def deployment_daemon_alive(instance: dg.DagsterInstance) -> bool:
    now = time.time()
    return any(now - beat.timestamp < HEARTBEAT_FRESH_S for beat in instance.get_daemon_heartbeats().values())


def cli_interval_s(paths: DataPaths, env=None) -> int:
    """The sensors' interval for a daemon the CLI starts: ``HM_AUTOMATION_INTERVAL_S`` when set, else
    ``CLI_INTERVAL_S``, or ``LARGE_INTERVAL_S`` when the raw transactions file is over ``LARGE_RAW_BYTES``."""
    env = os.environ if env is None else env
    if env.get(automation.INTERVAL_ENV, "").strip():
        return automation.settings(env)["interval_s"]
    raw = paths.raw / TRANSACTIONS_CSV
    return LARGE_INTERVAL_S if raw.is_file() and raw.stat().st_size > LARGE_RAW_BYTES else CLI_INTERVAL_S


def free_port(host: str = CODE_SERVER_HOST) -> int:
    """A port nothing listens on now (the code server's; the tests' and benchmarks' local servers too)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start_code_server(paths: DataPaths, env: dict, wait_s: float = 600) -> tuple[subprocess.Popen, int]:
    """One code server for the whole command (``dagster api grpc`` on a local port), up once it answers.

    With a ``python_module`` workspace the daemon starts a code server of its own and replaces it at every
    workspace reload (every 60 s, dagster/_daemon/controller.py): 63 new processes in a 72-minute full-scale
    run, a tenth of its CPU. Pointed at a running server (a ``grpc_server`` entry, as in a deployment), a
    reload only asks it for its definitions again."""
    port = free_port()
    log = open(paths.dagster_home / "code_server.log", "ab")  # noqa: SIM115 -- the server holds it
    proc = subprocess.Popen([sys.executable, "-m", "dagster", "api", "grpc", "--host", CODE_SERVER_HOST, "--port", str(port),
                             "-m", "hm_recsys.definitions", "--location-name", LOCATION, "-d", str(REPO_ROOT)],
                            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    log.close()
    deadline = time.time() + wait_s
    while True:  # the server binds its port once the definitions are loaded
        if proc.poll() is not None:
            tail = (paths.dagster_home / "code_server.log").read_text(errors="replace")[-3000:]
            raise PipelineError(f"the code server exited ({proc.returncode}) before serving:\n{tail}")
        try:
            socket.create_connection((CODE_SERVER_HOST, port), timeout=1).close()
            return proc, port
        except OSError:
            if time.time() > deadline:
                stop(proc)
                raise PipelineError(f"the code server did not answer on port {port} within {wait_s:.0f} s") from None
            time.sleep(0.5)


def start_daemon(paths: DataPaths, eval_weeks: int) -> tuple[subprocess.Popen, subprocess.Popen]:
    """A code server and ``dagster-daemon run`` over it, with the window this command needs."""
    env = {**os.environ, automation.EVAL_WEEKS_ENV: str(eval_weeks), automation.INTERVAL_ENV: str(cli_interval_s(paths)),
           automation.RETRY_FAILED_ENV: "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    server, port = start_code_server(paths, env)
    workspace = paths.dagster_home / "workspace.yaml"  # this command's: the repository's, served by that server
    workspace.write_text(f"load_from:\n  - grpc_server:\n      host: {CODE_SERVER_HOST}\n      port: {port}\n"
                         f"      location_name: {LOCATION}\n")
    log = open(paths.dagster_home / "daemon.log", "ab")  # noqa: SIM115 -- the daemon holds it
    daemon = str(Path(sys.executable).with_name("dagster-daemon"))
    try:
        proc = subprocess.Popen([daemon, "run", "-w", str(workspace)], cwd=REPO_ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    except BaseException:
        stop(server)
        raise
    finally:
        log.close()
    return proc, server


def stop(proc: subprocess.Popen, grace_s: float = 60) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- what the CLI tells the instance ---------------------------------------------------------------

def observe_raw(instance: dg.DagsterInstance, paths: DataPaths) -> list[str]:
    """Record each raw input's content version when it differs from the last one recorded (as the
    ``raw_files`` sensor would, without waiting for its tick)."""
    from hm_recsys.defs.assets.raw import RAW_ASSETS, raw_version
    from hm_recsys.defs.resources import DataResource

    data = DataResource(data_dir=str(paths.root))
    changed = []
    for asset in RAW_ASSETS:
        version = raw_version(data, asset)
        last = instance.fetch_observations(dg.AssetKey(asset), limit=1).records
        if last and last[0].asset_observation.tags.get("dagster/data_version") == version:
            continue
        instance.report_runless_asset_event(dg.AssetObservation(asset_key=asset, tags={"dagster/data_version": version}))
        changed.append(asset)
    return changed


def sweep_leftovers(paths: DataPaths) -> list[str]:
    """Temporary files of steps that were killed mid-write. Only for the embedded default once no process
    serves it: on a shared data root another host's step may be writing its own."""
    lines = []
    for tmp in [*paths.root.rglob(".*.tmp"), *paths.root.rglob(".*.old")]:
        if paths.dagster_home in tmp.parents or not tmp.exists():
            continue
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        lines.append(f"removed leftover temporary {tmp.relative_to(paths.root)}")
    return lines


# --- following the runs ----------------------------------------------------------------------------

def failure_reason(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    """The innermost error of the run's first failed step (the user's own message), else the run's."""
    if run.status == dg.DagsterRunStatus.CANCELED:
        return f"run {run.run_id[:8]} was canceled"
    for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        error = record.dagster_event.step_failure_data.error
        while error is not None and error.cause is not None:
            error = error.cause
        lines = [line.strip() for line in (error.message if error else "").strip().splitlines() if line.strip()]
        return f"{record.dagster_event.step_key}: {' '.join(lines[:4]) if lines else (error.cls_name if error else '?')}"
    for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE):
        return f"run {run.run_id[:8]} failed: {record.message or 'see the run in the Dagster UI'}"
    return f"run {run.run_id[:8]} failed (see the run in the Dagster UI)"


def _label(run: dg.DagsterRun) -> str:
    week = run.tags.get("dagster/partition", "")
    stage = run.tags.get("hm_recsys/stage", run.job_name)
    return f"{week} {stage}".strip()


def automation_quiet_since(instance: dg.DagsterInstance, since: float) -> bool:
    """Every automation sensor has finished a tick begun after ``since`` that requested nothing."""
    names = {f"rebuild_{stage}" for stage in STAGES}
    quiet = set()
    for state in instance.all_instigator_state():
        if state.instigator_name not in names:
            continue
        for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id, after=since, limit=20):
            if tick.status.value == "FAILURE" and tick.error is not None:
                raise PipelineError(f"automation sensor {state.instigator_name} failed: {tick.error.message.strip()}")
            if tick.status.value in ("SUCCESS", "SKIPPED") and not tick.run_ids \
                    and not tick.requested_asset_materialization_count:
                quiet.add(state.instigator_name)
                break
    return quiet == names


def follow(instance: dg.DagsterInstance, since: float, say: Callable[[str], None], stalled_s: float = 600) -> int:
    """Print one line per run that ends (those created from ``since`` on, and those in flight then); return
    the number of runs once automation has nothing left to request. The first failure that run retries
    will not retry raises its reason."""
    done: set[str] = set()
    failed_at: dict[str, float] = {}
    left_over = [r.run_id for r in instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS))]
    last_change, warned = since, False
    created_after = dt.datetime.fromtimestamp(since, tz=dt.timezone.utc)
    while True:
        records = [*instance.get_run_records(dg.RunsFilter(run_ids=left_over)),
                   *instance.get_run_records(dg.RunsFilter(created_after=created_after))] if left_over else \
            list(instance.get_run_records(dg.RunsFilter(created_after=created_after)))
        for record in sorted(records, key=lambda r: r.create_timestamp):
            run = record.dagster_run
            if run.run_id in done or run.status not in FINISHED:
                continue
            if run.status == dg.DagsterRunStatus.FAILURE and WILL_RETRY not in run.tags \
                    and time.time() - failed_at.setdefault(run.run_id, time.time()) < RETRY_TAG_WAIT_S:
                continue  # the instance tags a failed run with its retry decision just after failing it
            done.add(run.run_id)
            end = record.end_time or time.time()
            last_change = max(last_change, end)
            seconds = end - (record.start_time or end)
            assets = ", ".join(sorted(k.to_user_string() for k in run.asset_selection or []))
            if run.status == dg.DagsterRunStatus.SUCCESS:
                say(f"{_label(run)}: {assets} in {seconds:.0f}s (run {run.run_id[:8]})")
            elif run.tags.get(WILL_RETRY) == "true":
                say(f"{_label(run)}: run {run.run_id[:8]} ended unfinished ({failure_reason(instance, run)}); "
                    f"run retries launch it again")
            else:
                raise PipelineError(f"{failure_reason(instance, run)} ({_label(run)} run {run.run_id[:8]})")
        if not instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS), limit=1):
            if automation_quiet_since(instance, last_change):
                return len(done)
            if not warned and time.time() - last_change > stalled_s:
                say(f"nothing has run for {stalled_s:.0f}s: are the daemon and its rebuild_* sensors running?")
                warned = True
        time.sleep(POLL_S)


def cancel_in_flight(instance: dg.DagsterInstance, wait_s: float = 120) -> None:
    """After a failure the command stops: its daemon's other runs are canceled, not orphaned."""
    for run in instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS)):
        try:
            instance.run_coordinator.cancel_run(run.run_id)
        except Exception:  # noqa: BLE001 -- best effort; run monitoring settles what is left
            pass
    deadline = time.time() + wait_s
    while instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS), limit=1) and time.time() < deadline:
        time.sleep(POLL_S)


def settle(paths: DataPaths, *, eval_weeks: int, say: Callable[[str], None] = print) -> int:
    """Have the daemon build what automation requests until it requests nothing; returns the number of runs."""
    where = use_instance(paths)
    instance = dg.DagsterInstance.get()
    daemon = server = None
    try:
        if where.embedded:
            claim(paths, "hm-recsys command")  # nothing else serves this one-machine instance: safe to sweep
            for line in sweep_leftovers(paths):
                say(line)
        else:
            if not deployment_daemon_alive(instance):
                raise PipelineError(f"no dagster-daemon serves the instance in {where.home}: start one "
                                    f"(`dagster-daemon run -w {WORKSPACE}`, see README) and run this again")
            from hm_recsys.io import collect_garbage  # a shared root: only leftovers too old to be anyone's write

            for leftover in collect_garbage(paths.root):
                say(f"removed stale leftover {leftover.relative_to(paths.root)}")
        changed = observe_raw(instance, paths)
        if changed:
            say(f"raw inputs with a new content version: {', '.join(changed)}")
        since = time.time()
        if where.embedded:
            daemon, server = start_daemon(paths, eval_weeks)
            (paths.dagster_home / PID_FILE).write_text(f"{daemon.pid} dagster-daemon of a hm-recsys command (pid {os.getpid()})\n")
        try:
            return follow(instance, since, say)
        except PipelineError:
            if daemon is not None:
                cancel_in_flight(instance)
            raise
    finally:
        if daemon is not None:
            stop(daemon)
        if server is not None:
            stop(server)
        if where.embedded:
            (paths.dagster_home / PID_FILE).unlink(missing_ok=True)
