"""The executor and the jobs a user launches from the UI.

One executor for every launch path (``Definitions(executor=...)`` covers materializations from the
asset graph, the automation sensor and backfills): each step in its own process, two at a time. GPU
work is serialised by the instance-wide ``gpu`` pool (its limit is the instance's: dagster.yaml), not by a
separate job, so it holds however a step was launched (the Celery executor claims the slot before it sends
the task, and the ``gpu`` worker runs one task at a time besides).

The executor is a deployment choice, read from ``HM_EXECUTOR`` when the code location loads: ``multiprocess``
(the default: one machine) or ``celery`` (the cluster profile, deploy/cluster: each step is a Celery task on the
queue its ``dagster-celery/queue`` tag names, ``cpu`` or ``gpu``, served by workers on other machines; broker and
result backend from ``HM_CELERY_BROKER`` / ``HM_CELERY_BACKEND``, resolved where the run executes). Every process
that loads the code (daemon, code server, run worker, Celery workers) must see the same ``HM_EXECUTOR`` and
``HM_DATA_DIR``.
"""

import os

import dagster as dg

GPU_POOL = "gpu"
MAX_CONCURRENT = 2  # steps per run (2 cores)

EXECUTOR_ENV = "HM_EXECUTOR"
BROKER_ENV, BACKEND_ENV = "HM_CELERY_BROKER", "HM_CELERY_BACKEND"
VISIBILITY_ENV = "HM_CELERY_VISIBILITY_TIMEOUT_S"
# A lost task (its worker killed, its machine gone) comes back after this long on a Redis broker: longer than
# any step (the longest at full scale, a cold two_tower_model, took ~1,500 s), or a healthy step would be sent
# a second time while it runs (deduplicated once it has succeeded, but a second worker of the queue would run it).
VISIBILITY_TIMEOUT_S = 3 * 3600

# Routing of every step. Celery reads the queue tag; dagster-k8s's k8s_job_executor / K8sRunLauncher read the
# container config (one card per GPU step). Each asset passes one of these as op_tags (merged with any others).
QUEUE_TAG = "dagster-celery/queue"
CPU_TAGS = {QUEUE_TAG: "cpu"}
GPU_TAGS = {
    QUEUE_TAG: "gpu",
    "dagster-k8s/config": {"container_config": {"resources": {"limits": {"nvidia.com/gpu": 1}}}},
}


def celery_settings(env=None) -> dict:
    """The Celery settings of the cluster profile: the executor's ``config_source`` (the run worker's app) and
    the same block in every worker's config YAML (``execution: config: config_source:``), which is where the
    worker-side ones take effect.

    A step's task is acknowledged when it ends, not when a worker takes it (``task_acks_late``):

    - the process executing it dies (OOM kill, kill -9 of the pool child): the worker's main process sees the
      child lost and puts the task back at once (``task_reject_on_worker_lost``), its next child runs it again;
    - the whole worker dies (kill -9 of its main process, whose pool child dies with it: Celery sets the child's
      parent-death signal; or the machine): the task stays unacknowledged in Redis and comes back once it is
      ``visibility_timeout`` old, taken by the queue's next worker (the restarted one). No Dagster run failed:
      the run worker waits for the task's result all along, its ``gpu`` slot held.

    ``worker_deduplicate_successful_tasks``: a task sent again after it succeeded (a long step outliving the
    visibility timeout, a worker killed between storing the result and acknowledging) is skipped, not run twice.
    Each worker reserves no task beyond the one it runs (prefetch 1: a busy worker does not hoard the queue).
    """
    env = os.environ if env is None else env
    raw = env.get(VISIBILITY_ENV, "").strip()
    try:
        visibility = int(raw) if raw else VISIBILITY_TIMEOUT_S
    except ValueError:
        raise ValueError(f"{VISIBILITY_ENV}={raw!r}: expected whole seconds") from None
    if visibility < 1:
        raise ValueError(f"{VISIBILITY_ENV}={visibility}: expected at least 1")
    return {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_deduplicate_successful_tasks": True,
        "worker_prefetch_multiplier": 1,
        "broker_transport_options": {
            # dagster_celery's defaults (replaced as a whole by this key), then the redelivery of lost tasks
            "max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5,
            "visibility_timeout": visibility,
            # every consumer sweeps for tasks past the timeout this often (kombu: every 10 s, scanning every 10th)
            "unacked_restore_interval": max(1, min(60, visibility // 6)),
            "unacked_restore_throttle": 1,
        },
    }


def executor_from_env(env=None) -> dg.ExecutorDefinition:
    """``HM_EXECUTOR``: ``multiprocess`` (default: a process per step, so a step's memory goes back when it ends),
    ``in_process`` (the run's steps one after another in its own process: no per-step start-up, for small
    worlds; the end-to-end tests use it) or ``celery``; dagster_celery is imported only for ``celery``."""
    env = os.environ if env is None else env
    kind = env.get(EXECUTOR_ENV, "").strip().lower() or "multiprocess"
    if kind == "multiprocess":
        return dg.multiprocess_executor.configured({"max_concurrent": MAX_CONCURRENT})
    if kind == "in_process":
        return dg.in_process_executor
    if kind == "celery":
        from dagster_celery import celery_executor

        # Env sources, not values: the broker URL (it may hold a password) stays out of the job snapshot and is
        # resolved by the run worker. The result backend defaults to the broker (one Redis serves both).
        return celery_executor.configured({
            "broker": {"env": BROKER_ENV},
            "backend": {"env": BACKEND_ENV if env.get(BACKEND_ENV) else BROKER_ENV},
            "config_source": celery_settings(env),
        })
    raise ValueError(f"{EXECUTOR_ENV}={kind!r}: expected 'multiprocess', 'in_process' or 'celery'")


EXECUTOR = executor_from_env()


# A week's longest chain (shards -> towers -> fine-tuning -> top-100, ~1,500 s at full scale) starts before the
# sources and baselines that run beside it: among ready steps the executor starts the higher priority first.
CRITICAL_PATH = {"dagster/priority": "1"}


UNPARTITIONED = ["articles", "customers", "transactions", "image_embeddings"]
RANKING = dg.AssetSelection.assets("ranker_hparams", "ranker_model", "final", "evaluation", "serving_snapshot")
# A week's ranker features (at full scale ~20 min) need none of the state week runs share, so they are a stage of
# their own: the next week's run (limited to one at a time) starts while they are computed.
FEATURES = dg.AssetSelection.assets("ranker_features")


STAGE_TAG = "hm_recsys/stage"  # dagster.yaml's run queue limits week runs by it
# A run in flight: queued, starting, running or being cancelled (not yet SUCCESS, FAILURE or CANCELED).
IN_PROGRESS = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
               dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


STAGES = ("tables", "week", "features", "ranking")


def stages() -> dict[str, dg.AssetSelection]:
    """The funnel's stages (``STAGES``), each a job and an automation sensor: tables, one target week up to
    its candidates and baselines, the week's ranker features, one ranking week."""
    per_week = dg.AssetSelection.all() - dg.AssetSelection.groups("raw") - dg.AssetSelection.assets(*UNPARTITIONED)
    return {"tables": dg.AssetSelection.assets(*UNPARTITIONED), "week": per_week - RANKING - FEATURES,
            "features": FEATURES, "ranking": RANKING}


JOB_DESCRIPTIONS = {
    "tables": "Validate the raw files, (re)build the typed Parquet tables and the image embeddings.",
    "week": "One target week up to its candidates: shards, towers, candidate sources, baseline submissions.",
    "features": "The ranker's features of one week's candidates (beside the next week's run).",
    "ranking": "One ranking week: tuning, CatBoost ranker, final.csv, the MAP@12 evaluation and the serving snapshot.",
}


def build_jobs(weeks: dg.PartitionsDefinition, ranking_weeks: dg.PartitionsDefinition) -> list:
    """One job per stage (``<stage>_job``, tagged with its stage). Jobs share one partitions definition each:
    the week and features jobs the target weeks, ``ranking_job`` the ranking weeks (which start once the ranker
    has its training weeks)."""
    selection = stages()
    partitions = {"tables": None, "week": weeks, "features": weeks, "ranking": ranking_weeks}
    return [dg.define_asset_job(f"{stage}_job", selection=selection[stage], partitions_def=partitions[stage],
                                tags={STAGE_TAG: stage}, description=JOB_DESCRIPTIONS[stage])
            for stage in STAGES]
