"""The cluster profile (deploy/cluster): step routing tags, the executor chosen by HM_EXECUTOR, the instance
config; and (slow) one run on PostgreSQL + the daemon + Celery workers over Redis, all on this machine."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hm_recsys.defs.jobs import CPU_TAGS, GPU_POOL, GPU_TAGS, QUEUE_TAG, executor_from_env
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
    assert config["concurrency"]["runs"]["max_concurrent_runs"] == 2
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


def _worker_by_step(instance, run_id: str) -> dict[str, str]:
    """Which Celery worker executed each step: the engine event the Celery task reports when it starts
    ("Executing steps ... in celery worker") carries the worker's node name as metadata "Celery worker"."""
    found = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or not event.is_engine_event or event.engine_event_data is None:
            continue
        meta = event.engine_event_data.metadata or {}
        if "Celery worker" in meta:
            found[record.step_key] = meta["Celery worker"].value
    return found


@pytest.mark.slow
def test_tables_job_on_the_cluster_profile(tmp_path):
    """tables_job queued on PostgreSQL, launched by dagster-daemon, its steps run by Celery workers: the
    tables on the cpu worker, image_embeddings on the gpu worker, as the run's event log records; the gpu
    pool holds image_embeddings back while it has no slot."""
    import uuid

    import dagster as dg
    from dagster._core.execution.stats import StepEventStatus

    from hm_recsys.synth import generate_world

    data = tmp_path / "data"
    generate_world(data, scale="tiny", seed=0, images=False)
    t0 = time.monotonic()
    with cluster_services(data, tmp_path / "procs") as cluster:
        up = time.monotonic() - t0
        assert "rebuild_tables" in cluster.stopped  # only the run submitted here goes
        env = cluster.process_env(tmp_path / "client")
        run_id = str(uuid.uuid4())
        instance = cluster.instance(tmp_path / "client")
        instance.event_log_storage.set_concurrency_slots(GPU_POOL, 0)  # held shut until the CPU steps are done
        launch = subprocess.run([str(VENV_BIN / "dagster"), "job", "launch", "-w", str(REPO / "workspace.yaml"),
                                 "-j", "tables_job", "--run-id", run_id], cwd=REPO, env=env, capture_output=True,
                                text=True, timeout=300)
        assert launch.returncode == 0, launch.stderr[-3000:]
        try:
            # Pools hold under the Celery executor: the run worker claims the step's slot before it sends the task.
            tables = {"articles", "customers", "transactions"}
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                done = {s.step_key for s in instance.get_run_step_stats(run_id) if s.status == StepEventStatus.SUCCESS}
                if done >= tables or instance.get_run_by_id(run_id).is_finished:
                    break
                time.sleep(0.5)
            assert done >= tables
            time.sleep(3)
            assert "image_embeddings" not in {s.step_key for s in instance.get_run_step_stats(run_id)}
            instance.event_log_storage.set_concurrency_slots(GPU_POOL, 1)
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and not instance.get_run_by_id(run_id).is_finished:
                time.sleep(1)
            run = instance.get_run_by_id(run_id)
            assert [r.run_id for r in instance.get_runs()] == [run_id]  # queued on PostgreSQL, launched by the daemon
            ran = time.monotonic() - t0 - up
            messages = [r.user_message or (r.dagster_event.message if r.dagster_event else "") for r in instance.all_logs(run.run_id)]
            assert run.status == dg.DagsterRunStatus.SUCCESS, "\n".join(m or "" for m in messages)[-5000:]
            workers = _worker_by_step(instance, run.run_id)
        finally:
            instance.dispose()
    host = socket.gethostname()
    assert workers == {"articles": f"cpu@{host}", "customers": f"cpu@{host}", "transactions": f"cpu@{host}",
                       "image_embeddings": f"gpu@{host}"}
    assert (data / "tables").is_dir() and (data / "embeddings" / "image_embeddings.parquet").exists()
    print(f"services up in {up:.1f} s, launch to finished run {ran:.1f} s")
