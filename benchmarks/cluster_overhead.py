"""What the cluster profile costs on one machine: `hm-recsys backtest --weeks 1` through the embedded default
(SQLite, multiprocess executor, a daemon the CLI starts) and through the cluster profile (PostgreSQL, Redis,
dagster-daemon, Celery workers `cpu` and `gpu`, the CLI as a client), side by side on copies of the same raw files.

    .venv/bin/python benchmarks/cluster_overhead.py                  # tiny world, no images, the tests' FAST config
    .venv/bin/python benchmarks/cluster_overhead.py --scale demo --config none   # the demo world, default config

The cluster is started by hm_recsys_tests/services.py (the harness of hm_recsys_tests/test_cluster_profile.py),
every process on this machine. Prints wall times: the services' start, each backtest, and the sum of step
durations each instance recorded (the step's own time; the rest of the wall is scheduling and task overhead).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FAST = REPO / "hm_recsys_tests" / "fast_config.yaml"


def backtest(env: dict, data: Path, config: Path | None) -> tuple[float, subprocess.CompletedProcess]:
    cmd = [sys.executable, "-m", "hm_recsys.cli", "--data-dir", str(data), "backtest", "--weeks", "1"]
    if config:
        cmd += ["--config", str(config)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=data.parent)
    took = time.perf_counter() - t0
    if out.returncode:
        raise SystemExit(f"backtest failed (rc {out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return took, out


def step_seconds(instance) -> tuple[int, int, float]:
    """(runs, steps, summed step seconds) of every run of the instance."""
    runs = instance.get_runs()
    stats = [s for r in runs for s in instance.get_run_step_stats(r.run_id) if s.end_time and s.start_time]
    return len(runs), len(stats), sum(s.end_time - s.start_time for s in stats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="tiny")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--config", type=lambda v: None if v == "none" else Path(v), default=FAST,
                    help="asset config (default: the tests' fast config; `none`: the pipeline's defaults)")
    ap.add_argument("--images", action="store_true", help="keep the world's article images")
    ap.add_argument("--workdir", type=Path, help="default: a temporary folder, removed at the end")
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import dagster as dg

    from hm_recsys.synth import generate_world
    from hm_recsys_tests.services import DAEMON_COMMAND, cluster_services

    work = args.workdir or Path(tempfile.mkdtemp(prefix="hm-cluster-bench-"))
    world = work / "world"
    t0 = time.perf_counter()
    if not (world / "raw").exists():
        generate_world(world, scale=args.scale, seed=args.seed, images=args.images)
    generated = time.perf_counter() - t0
    embedded_data, cluster_data = work / "embedded" / "data", work / "cluster" / "data"
    for dest in (embedded_data, cluster_data):
        shutil.rmtree(dest.parent, ignore_errors=True)
        shutil.copytree(world / "raw", dest / "raw")

    # the embedded default: no DAGSTER_HOME, the multiprocess executor
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "HM_EXECUTOR", "HM_CONFIG")}
    env["HM_DATA_DIR"] = str(embedded_data)
    embedded_s, embedded_out = backtest(env, embedded_data, args.config)
    with dg.DagsterInstance.from_config(str(embedded_data / "dagster_home")) as instance:
        embedded_steps = step_seconds(instance)

    # the cluster profile: the daemon's code location reads the window and the config from its environment
    code_env = {"HM_EVAL_WEEKS": "1", "HM_AUTOMATION_INTERVAL_S": "3", "HM_RETRY_FAILED": "1",
                "TF_CPP_MIN_LOG_LEVEL": "3", **({"HM_CONFIG": str(args.config)} if args.config else {})}
    t0 = time.perf_counter()
    # the workers as docs/operations.md starts them: cpu two tasks at a time, gpu one task per fresh child
    with cluster_services(cluster_data, work / "cluster" / "procs", automation=True, env=code_env,
                          concurrency={"cpu": 2}, max_tasks_per_child={"gpu": 1}) as cluster:
        up_s = time.perf_counter() - t0
        client_env = cluster.process_env(work / "cluster" / "client")
        cluster_s, cluster_out = backtest(client_env, cluster_data, args.config)
        instance = cluster.instance(work / "cluster" / "client")
        try:
            cluster_steps = step_seconds(instance)
        finally:
            instance.dispose()
        workers = {q: w.command for q, w in cluster.worker.items()}

    same = [line for line in embedded_out.stdout.splitlines() if line.startswith("|")] == \
        [line for line in cluster_out.stdout.splitlines() if line.startswith("|")]
    cores = os.cpu_count()
    print(f"# benchmarks/cluster_overhead.py --scale {args.scale} (seed {args.seed}, images {args.images}, "
          f"config {args.config.relative_to(REPO) if args.config and args.config.is_relative_to(REPO) else args.config})")
    print(f"# host {socket.gethostname()}, {cores} cores; world generated in {generated:.1f} s; "
          f"`hm-recsys backtest --weeks 1`, wall seconds")
    print("| profile | services up s | backtest wall s | runs | steps | summed step s | wall - summed/2 s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, up, wall, (runs, steps, summed) in (("embedded default (SQLite, multiprocess)", 0.0, embedded_s, embedded_steps),
                                                  ("cluster (PostgreSQL, Redis, Celery cpu+gpu)", up_s, cluster_s, cluster_steps)):
        print(f"| {name} | {up:.1f} | {wall:.1f} | {runs} | {steps} | {summed:.1f} | {wall - summed / 2:.1f} |")
    print(f"# cluster / embedded backtest wall: {cluster_s / embedded_s:.2f}x; same MAP table: {same}")
    print("# daemon: " + " ".join(str(c) for c in DAEMON_COMMAND))
    for queue, cmd in workers.items():
        print(f"# worker {queue}: " + " ".join(str(c) for c in cmd))
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
