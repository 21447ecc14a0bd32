"""The cluster profile (deploy/cluster): step routing tags, the executor chosen by HM_EXECUTOR, the instance
config; and (slow) one run on PostgreSQL + the daemon + Celery workers over Redis, all on this machine."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import yaml

from hm_recsys.defs.jobs import CPU_TAGS, GPU_POOL, GPU_TAGS, QUEUE_TAG, STAGES, executor_from_env
from hm_recsys_tests.conftest import CACHES, FAST, artifacts
from hm_recsys_tests.services import CLUSTER_YAML, REPO, VENV_BIN, cluster_services

GPU_ASSETS = {"image_embeddings", "two_tower_model", "two_tower_finetuned", "retrieval_candidates",
              "ranker_hparams", "ranker_model"}
CLUSTER_ENV = {"HM_PG_HOST": "db.internal", "HM_PG_PORT": "5433", "HM_PG_USER": "dagster",
               "HM_PG_PASSWORD": "secret", "HM_PG_DB": "dagster", "HM_DAGSTER_STORAGE": "/shared/dagster_storage"}


def _op_tags(definitions) -> dict[str, dict]:
    """Every asset (observable sources included) -> the tags of the op that materializes / observes it."""
    out = {}
    for node in definitions.resolve_asset_graph().asset_nodes:
        ad = node.assets_def
        out[node.key.to_user_string()] = dict(ad.node_def.tags) if ad.is_executable else None
    return out


@pytest.fixture(scope="module")
def tagged(tiny_world):
    from hm_recsys.definitions import build_definitions

    defs = build_definitions(tiny_world)
    pools = {node.key.to_user_string(): node.pools for node in defs.resolve_asset_graph().asset_nodes}
    return _op_tags(defs), pools


def test_every_asset_has_one_queue(tagged):
    tags, _ = tagged
    assert len(tags) > 20
    for asset, op_tags in tags.items():
        assert op_tags is not None, f"{asset} has no op"
        queues = [k for k in op_tags if k.startswith("dagster-celery/queue")]
        assert queues == [QUEUE_TAG], (asset, op_tags)
        assert op_tags[QUEUE_TAG] in ("cpu", "gpu"), (asset, op_tags)


def test_gpu_routing(tagged):
    tags, pools = tagged
    gpu = {a for a, t in tags.items() if t[QUEUE_TAG] == "gpu"}
    assert gpu == GPU_ASSETS
    assert {a for a, p in pools.items() if GPU_POOL in (p or ())} == GPU_ASSETS  # the same steps the pool guards
    for asset in gpu:  # the same tags serve dagster-k8s (k8s_job_executor / K8sRunLauncher): one card per step
        k8s = json.loads(tags[asset]["dagster-k8s/config"])
        assert k8s["container_config"]["resources"]["limits"] == {"nvidia.com/gpu": 1}
    assert all("dagster-k8s/config" not in t for a, t in tags.items() if a not in gpu)
    # the retrieval chain keeps its priority beside the queue
    assert tags["two_tower_model"]["dagster/priority"] == tags["tfrecords"]["dagster/priority"] == "1"
    assert CPU_TAGS[QUEUE_TAG] == "cpu" and GPU_TAGS[QUEUE_TAG] == "gpu"


def test_executor_from_env():
    assert executor_from_env({}).name == "multiprocess"
    assert executor_from_env({"HM_EXECUTOR": "multiprocess"}).name == "multiprocess"
    celery = executor_from_env({"HM_EXECUTOR": "celery", "HM_CELERY_BROKER": "redis://127.0.0.1:6390/0"})
    assert celery.name == "celery"
    with pytest.raises(ValueError, match="HM_EXECUTOR"):
        executor_from_env({"HM_EXECUTOR": "dask"})


def test_celery_executor_config_resolves_from_env(monkeypatch):
    """Broker and backend are env sources, resolved where the run executes (the URL stays out of snapshots);
    the backend falls back to the broker."""
    monkeypatch.setenv("HM_CELERY_BROKER", "redis://127.0.0.1:6390/0")
    monkeypatch.setenv("HM_CELERY_BACKEND", "redis://127.0.0.1:6390/1")
    both = executor_from_env({"HM_EXECUTOR": "celery", "HM_CELERY_BROKER": "x", "HM_CELERY_BACKEND": "y"})
    resolved = both.config_schema.resolve_config({})
    assert resolved.success, resolved.errors
    assert (resolved.value["config"]["broker"], resolved.value["config"]["backend"]) == (
        "redis://127.0.0.1:6390/0", "redis://127.0.0.1:6390/1")
    broker_only = executor_from_env({"HM_EXECUTOR": "celery", "HM_CELERY_BROKER": "x"})
    assert broker_only.config_schema.resolve_config({}).value["config"]["backend"] == "redis://127.0.0.1:6390/0"


def test_celery_settings_redeliver_lost_tasks(monkeypatch):
    """Late acknowledgement, requeue on a lost pool child, dedup of redelivered successes, prefetch 1; the visibility
    timeout from HM_CELERY_VISIBILITY_TIMEOUT_S (default: longer than any step), in the executor's config_source."""
    from hm_recsys.defs.jobs import VISIBILITY_TIMEOUT_S, celery_settings

    monkeypatch.setenv("HM_CELERY_BROKER", "redis://127.0.0.1:6390/0")

    default = celery_settings({})
    assert default["task_acks_late"] and default["task_reject_on_worker_lost"]
    assert default["worker_deduplicate_successful_tasks"] and default["worker_prefetch_multiplier"] == 1
    assert default["broker_transport_options"]["visibility_timeout"] == VISIBILITY_TIMEOUT_S >= 2 * 1500
    short = celery_settings({"HM_CELERY_VISIBILITY_TIMEOUT_S": "30"})["broker_transport_options"]
    assert (short["visibility_timeout"], short["unacked_restore_interval"], short["unacked_restore_throttle"]) == (30, 5, 1)
    with pytest.raises(ValueError, match="HM_CELERY_VISIBILITY_TIMEOUT_S"):
        celery_settings({"HM_CELERY_VISIBILITY_TIMEOUT_S": "soon"})
    celery = executor_from_env({"HM_EXECUTOR": "celery", "HM_CELERY_BROKER": "x", "HM_CELERY_VISIBILITY_TIMEOUT_S": "30"})
    resolved = celery.config_schema.resolve_config({})
    assert resolved.value["config"]["config_source"] == celery_settings({"HM_CELERY_VISIBILITY_TIMEOUT_S": "30"})


def test_default_profile_does_not_import_celery(tiny_world):
    code = "import sys, hm_recsys.definitions; print(sorted(m for m in ('celery', 'dagster_celery', 'kombu') if m in sys.modules))"
    env = {**os.environ, "HM_DATA_DIR": str(tiny_world.root)}
    env.pop("HM_EXECUTOR", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_cluster_instance_config_is_valid(monkeypatch, tmp_path):
    """deploy/cluster/dagster.yaml against dagster's instance schema, and each pluggable class's own schema
    (no database needed)."""
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster._serdes.config_class import class_from_code_pointer
    from dagster_postgres import DagsterPostgresStorage

    for key, value in CLUSTER_ENV.items():
        monkeypatch.setenv(key, value)
    config, custom_class = dagster_instance_config(str(CLUSTER_YAML.parent))
    assert custom_class is None
    for key in ("run_coordinator", "local_artifact_storage", "compute_logs"):
        klass = class_from_code_pointer(config[key]["module"], config[key]["class"])
        result = process_config(klass.config_type(), config[key].get("config", {}))
        assert result.success, (key, result.errors)
        if key != "run_coordinator":
            assert result.value["base_dir"] == CLUSTER_ENV["HM_DAGSTER_STORAGE"]
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    pg = process_config(DagsterPostgresStorage.config_type(), config["storage"]["postgres"])
    assert pg.success, pg.errors
    db = pg.value["postgres_db"]
    assert (db["hostname"], db["port"], db["username"], db["password"], db["db_name"]) == (
        "db.internal", 5433, "dagster", "secret", "dagster")
    assert db["scheme"] == "postgresql+psycopg2"  # SQLAlchemy 2.1's plain postgresql:// wants psycopg 3
    assert config["concurrency"]["runs"]["max_concurrent_runs"] == 3
    # the same run queue and launcher as the embedded default (top-level dagster.yaml)
    default = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert config["concurrency"]["runs"]["tag_concurrency_limits"] == default["concurrency"]["runs"]["tag_concurrency_limits"] \
        == [{"key": "hm_recsys/stage", "value": "week", "limit": 1}]
    assert config["run_launcher"] == default["run_launcher"] == {"module": "hm_recsys.defs.run_launcher",
                                                                 "class": "MonitoredRunLauncher"}
    assert config["run_monitoring"]["enabled"] is True
    assert config["run_retries"] == {"enabled": True, "max_retries": 1, "retry_on_asset_or_op_failure": False}
    assert config["telemetry"] == {"enabled": False}


# --- end to end: the cluster stack on this machine --------------------------------------------------------


def _launch(env: dict, job: str, run_id: str, *extra: str) -> None:
    """Submit a run to the cluster's queue as an operator would: `dagster job launch` over the workspace."""
    launch = subprocess.run([str(VENV_BIN / "dagster"), "job", "launch", "-w", str(REPO / "workspace.yaml"), "-j", job,
                             "--run-id", run_id, *extra], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert launch.returncode == 0, launch.stderr[-3000:]


# --- end to end through the CLI: `hm-recsys backtest` as a client of the cluster profile --------------------------
#
# One stack for the module: PostgreSQL, Redis, dagster-daemon (automation sensors on) and two Celery workers, `cpu`
# and `gpu`, each in its own working directory and HOME, sharing only the database, the broker and the data root.
# The tests run in file order on it: the backtest, its artifacts, the gpu worker stopped, the gpu worker killed.

VISIBILITY_S = 30  # lost tasks come back after 30 s here (the profile's default is 3 h: see jobs.celery_settings)
CLIENT_TIMEOUT_S = 2400  # this 2-core machine shared with other test runs
_TMP = re.compile(r"(^|/)\.[^/]+\.[0-9a-f]{12}\.tmp(/|$)")  # io._sibling: a killed writer's scratch


def _all_executions(instance) -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for run in instance.get_runs():
        for record in instance.all_logs(run.run_id, of_type=dg_engine_event()):
            data = record.dagster_event.engine_event_data
            meta = (data.metadata or {}) if data is not None else {}
            if "Celery worker" in meta:
                found.setdefault((run.run_id, record.step_key), []).append(meta["Celery worker"].value)
    return found


def dg_engine_event():
    import dagster as dg

    return dg.DagsterEventType.ENGINE_EVENT


def _client(on, *args, wait: bool = True):
    """`hm-recsys` as a client of the cluster's instance (its own HOME and copy of the cluster dagster.yaml)."""
    cmd = [sys.executable, "-m", "hm_recsys.cli", *args]
    if wait:
        return subprocess.run(cmd, env=on.client_env, cwd=on.client_dir, capture_output=True, text=True,
                              timeout=CLIENT_TIMEOUT_S)
    return subprocess.Popen(cmd, env=on.client_env, cwd=on.client_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _finish(proc: subprocess.Popen, timeout: float = CLIENT_TIMEOUT_S):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _step_events(instance, run_id: str, step: str, kind) -> list:
    return [r for r in instance.all_logs(run_id, of_type=kind) if r.step_key == step]


def _runs_since(instance, since: float) -> list:
    import dagster as dg

    after = dt.datetime.fromtimestamp(since, tz=dt.timezone.utc)
    return list(instance.get_runs(dg.RunsFilter(created_after=after)))


def _wait_for(what: str, check, timeout: float, every: float = 0.5, client: subprocess.Popen | None = None,
              explain=None):
    """``explain``: what the instance and the workers say, appended to a timeout's message (a CI run's only trace)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if client is not None and client.poll() is not None:
            done = _finish(client)
            raise AssertionError(f"the client ended (rc {done.returncode}) while waiting for {what}\n"
                                 f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}" + (f"\n{explain()}" if explain else ""))


def _explain(on, since: float):
    """The runs created from ``since`` on (status, steps, failure reason) and the tails of the workers' logs."""
    def explain() -> str:
        from hm_recsys.defs.client import failure_reason

        lines = []
        for run in reversed(_runs_since(on.instance, since)):
            steps = {s.step_key: s.status.value if s.status else None for s in on.instance.get_run_step_stats(run.run_id)}
            reason = failure_reason(on.instance, run) if run.is_finished and run.status.value != "SUCCESS" else ""
            lines.append(f"run {run.run_id[:8]} {run.job_name} {dict(run.tags)} {run.status.value} {steps} {reason}")
        for queue, worker in on.cluster.worker.items():
            tail = worker.log.read_text(errors="replace")[-2500:] if worker.log.exists() else "(no log)"
            lines.append(f"--- {queue} worker (running: {worker.proc is not None}) log tail:\n{tail}")
        return "\n".join(lines)
    return explain


def _comparable(paths) -> dict[str, bytes]:
    """``artifacts`` less the cluster's shared Dagster storage (compute logs: instance state, like dagster_home)."""
    return {k: v for k, v in artifacts(paths).items() if not k.startswith("dagster_storage/")}


@pytest.fixture(scope="module")
def on_cluster(backtested, tmp_path_factory):
    """The stack, then `hm-recsys predict --config FAST` as its client on a copy of the shared end-to-end world's raw
    files. The embedded default's result of the same files is ``backtested`` (computed first): it built one more week
    (the labelled one it scores), so the cluster's artifacts must be a subset of its, byte for byte. The cpu worker
    runs two steps at a time (two cores), the gpu worker one."""
    from types import SimpleNamespace

    from hm_recsys.paths import DataPaths

    root = tmp_path_factory.mktemp("cluster_cli")
    data = DataPaths(root / "data")
    shutil.copytree(backtested[0].raw, data.raw)  # before the code loads
    env = {"HM_EVAL_WEEKS": "0", "HM_AUTOMATION_INTERVAL_S": "3", "HM_RETRY_FAILED": "1", "HM_CONFIG": FAST,
           "HM_CELERY_VISIBILITY_TIMEOUT_S": str(VISIBILITY_S), "TF_CPP_MIN_LOG_LEVEL": "3"}
    t0 = time.monotonic()
    with cluster_services(data.root, root / "procs", automation=True, env=env, concurrency={"cpu": 2}) as cluster:
        up = time.monotonic() - t0
        on = SimpleNamespace(cluster=cluster, data=data, root=root, client_dir=root / "client", timings={"services up": up})
        on.client_env = cluster.process_env(on.client_dir)
        on.instance = cluster.instance(on.client_dir)
        try:
            t1 = time.monotonic()
            on.predict = _client(on, "predict", "--config", FAST)
            on.timings["predict"] = time.monotonic() - t1
            yield on
        finally:
            on.instance.dispose()
            print("cluster timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in on.timings.items()))


def assert_subset_of_the_embedded_result(cluster_data, backtested, got: dict | None = None) -> None:
    """Every artifact the cluster wrote is the embedded default's, byte for byte (it wrote the production week's)."""
    got, want = _comparable(cluster_data) if got is None else got, artifacts(backtested[0])
    production = max(p.name for p in (backtested[0].root / "submissions").iterdir())
    assert f"submissions/{production}/final.csv" in got
    assert sorted(k for k in got if k not in want and k.split("/")[0] not in CACHES) == []
    assert [k for k in got if k in want and got[k] != want[k]] == []


@pytest.mark.slow
def test_cli_predict_on_the_cluster(on_cluster, backtested):
    """rc 0 and the production week; every GPU-bound step ran on the gpu worker, every other step on the cpu worker
    (the event log's "Executing steps ... in celery worker" engine events, through Dagster's API)."""
    import dagster as dg

    out = on_cluster.predict
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    production = max(p.name for p in (backtested[0].root / "submissions").iterdir())
    assert f"production week {production}:" in out.stdout
    instance = on_cluster.instance
    runs = instance.get_runs()
    assert runs and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), [(r.job_name, r.status) for r in runs]
    assert {r.tags.get("hm_recsys/stage") for r in runs} == set(STAGES)  # the automation sensors'
    executions = _all_executions(instance)
    succeeded = {(r.run_id, s.step_key) for r in runs for s in instance.get_run_step_stats(r.run_id)
                 if s.status.value == "SUCCESS"}
    assert succeeded and set(executions) == succeeded
    host = socket.gethostname()
    wrong = {key: workers for key, workers in executions.items()
             if set(workers) != {f"{'gpu' if key[1] in GPU_ASSETS else 'cpu'}@{host}"}}
    assert wrong == {}
    assert GPU_ASSETS <= {step for _, step in executions}
    on_cluster.timings["steps"] = len(executions)


@pytest.mark.slow
def test_cli_predict_artifacts_match_the_embedded_default(on_cluster, backtested):
    assert on_cluster.predict.returncode == 0
    assert_subset_of_the_embedded_result(on_cluster.data, backtested)


TABLES_STAGE = ("articles", "customers", "transactions", "image_embeddings")


@pytest.mark.slow
def test_gpu_steps_wait_for_their_pool_slot_and_the_gpu_worker(on_cluster, backtested):
    """The tables are rebuilt (their materializations wiped: automation finds them missing) with the ``gpu`` pool
    shut and the gpu worker stopped. The cpu worker finishes articles, customers and transactions; image_embeddings
    is not even sent while the pool has no slot (pools hold under the Celery executor: the run worker claims the
    step's slot before it sends the task); the slot opened, its task waits on the gpu queue; the gpu worker started
    again, the run finishes and the client returns 0 (nothing else changed: the rebuilt tables have the same content,
    so no week is unsynced)."""
    import dagster as dg

    assert on_cluster.predict.returncode == 0
    instance, gpu = on_cluster.instance, on_cluster.cluster.worker["gpu"]
    t0 = time.monotonic()
    gpu.stop()
    instance.event_log_storage.set_concurrency_slots(GPU_POOL, 0)
    since = time.time()
    instance.wipe_assets([dg.AssetKey(a) for a in TABLES_STAGE])
    client = _client(on_cluster, "predict", "--config", FAST, wait=False)
    try:
        def tables_run():  # the newest: a run retried by the instance's run retries is followed by its retry
            runs = [r for r in _runs_since(instance, since) if r.tags.get("hm_recsys/stage") == "tables"]
            return runs[0] if runs else None

        explain = _explain(on_cluster, since)
        _wait_for("the tables run", tables_run, 180, client=client, explain=explain)

        def cpu_done():
            done = {s.step_key for s in instance.get_run_step_stats(tables_run().run_id) if s.status.value == "SUCCESS"}
            return done >= {"articles", "customers", "transactions"}

        _wait_for("the cpu steps", cpu_done, 300, client=client, explain=explain)
        run = tables_run()

        def engine_events():
            return [r.message for r in _step_events(instance, run.run_id, "image_embeddings", dg.DagsterEventType.ENGINE_EVENT)]

        time.sleep(3)  # its inputs done: only the pool holds image_embeddings back
        assert not any("Submitting celery task" in m for m in engine_events()), engine_events()
        instance.event_log_storage.set_concurrency_slots(GPU_POOL, 1)  # the profile's default_limit
        _wait_for("the gpu task to be sent", lambda: any("Submitting celery task" in m and '"gpu"' in m for m in engine_events()),
                  120, client=client, explain=explain)
        time.sleep(3)  # sent to the gpu queue, which no worker serves
        assert not any("in celery worker" in m for m in engine_events()), engine_events()
        assert not _step_events(instance, run.run_id, "image_embeddings", dg.DagsterEventType.STEP_START)
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED, explain()
        waited = time.monotonic() - t0
        gpu.start()
        done = _finish(client)
    finally:
        instance.event_log_storage.set_concurrency_slots(GPU_POOL, 1)
        if client.poll() is None:
            client.kill()
        if gpu.proc is None:  # a failure above must not leave the next test without a gpu worker
            gpu.start()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    runs = _runs_since(instance, since)
    assert [(r.tags.get("hm_recsys/stage"), r.status) for r in runs[:1]] == [("tables", dg.DagsterRunStatus.SUCCESS)]
    # Earlier tables runs may only be runs that failed outside a step and that run retries launched again (a run
    # whose process did not start in time on a loaded machine); their reasons are reported, not hidden.
    retried = [r for r in runs[1:] if r.status == dg.DagsterRunStatus.FAILURE and r.tags.get("dagster/will_retry") == "true"]
    assert retried == runs[1:], explain()
    for r in retried:
        from hm_recsys.defs.client import failure_reason

        warnings.warn(f"tables run {r.run_id[:8]} failed and was retried: {failure_reason(instance, r)}", stacklevel=1)
    host = socket.gethostname()
    executions = {step: workers for (run_id, step), workers in _all_executions(instance).items() if run_id == run.run_id}
    assert executions == {"articles": [f"cpu@{host}"], "customers": [f"cpu@{host}"], "transactions": [f"cpu@{host}"],
                          "image_embeddings": [f"gpu@{host}"]}
    on_cluster.timings["gpu stopped: cpu steps done after"] = waited
    on_cluster.timings["gpu stopped: whole"] = time.monotonic() - t0
    assert_subset_of_the_embedded_result(on_cluster.data, backtested)


@pytest.mark.slow
def test_gpu_worker_killed_inside_a_step(on_cluster, backtested):
    """kill -9 of the gpu worker's main Celery process while the production week's ``ranker_hparams`` (CatBoost
    tuning, a gpu-queue step) runs on it, in a run launched through the instance's queue (``dagster job launch``; the
    kernel kills the pool child executing the step: Celery sets the child's parent-death signal). The step's task was
    not acknowledged (task_acks_late), so Redis hands it out again once it is VISIBILITY_S old, to the gpu worker
    started again; the same run succeeds (no run failed: its run worker waited for the task's result all along), the
    step ran twice on the gpu worker, and every artifact is byte-identical to the uninterrupted run (the tuning is
    seeded: the second attempt writes the same ranker_hparams.json, so nothing downstream becomes unsynced)."""
    import uuid

    import dagster as dg

    assert on_cluster.predict.returncode == 0
    instance, gpu = on_cluster.instance, on_cluster.cluster.worker["gpu"]
    production = max(p.name for p in (backtested[0].root / "submissions").iterdir())
    run_id, t0, t0_wall = str(uuid.uuid4()), time.monotonic(), time.time()
    _launch(on_cluster.client_env, "ranking_job", run_id, "-o", "ranker_hparams",
            "--tags", json.dumps({"dagster/partition": production}))

    def started():
        return _step_events(instance, run_id, "ranker_hparams", dg.DagsterEventType.STEP_START)

    _wait_for("ranker_hparams to start on the gpu worker", started, 300, every=0.1, explain=_explain(on_cluster, t0_wall))
    main, children = gpu.main_pid, gpu.pool_children()
    assert main and children, (main, children)
    os.kill(main, signal.SIGKILL)
    killed_at = time.monotonic()
    _wait_for("the pool child to die with the worker",
              lambda: not [p for p in children if Path(f"/proc/{p}").exists() and _state(p) != "Z"], 10, every=0.1)
    assert not _step_events(instance, run_id, "ranker_hparams", dg.DagsterEventType.STEP_SUCCESS), \
        "the step ended before the kill"
    _wait_for("the worker wrapper to exit", lambda: gpu.proc.poll() is not None, 30)
    gpu.start()
    _wait_for("the run to end", lambda: instance.get_run_by_id(run_id).is_finished, 600, every=1)
    recovered = time.monotonic() - killed_at
    run = instance.get_run_by_id(run_id)
    messages = [r.user_message or "" for r in instance.all_logs(run_id)]
    assert run.status == dg.DagsterRunStatus.SUCCESS, "\n".join(messages)[-5000:]
    assert not [r for r in instance.get_runs() if r.tags.get("dagster/parent_run_id") == run_id]  # not retried
    host = socket.gethostname()
    executions = {step: workers for (rid, step), workers in _all_executions(instance).items() if rid == run_id}
    assert executions == {"ranker_hparams": [f"gpu@{host}", f"gpu@{host}"]}  # killed once, run again
    assert len(started()) == 2
    got = _comparable(on_cluster.data)
    leftovers = sorted(k for k in got if _TMP.search(k))  # the killed attempt's scratch (swept after an hour)
    assert_subset_of_the_embedded_result(on_cluster.data, backtested, {k: v for k, v in got.items() if k not in leftovers})
    on_cluster.timings["kill: to success after the kill"] = recovered
    on_cluster.timings["kill: whole"] = time.monotonic() - t0
    print(f"killed gpu worker main pid {main} (pool child {children}) inside ranker_hparams [{production}]; "
          f"leftover temporaries: {leftovers}")


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"
