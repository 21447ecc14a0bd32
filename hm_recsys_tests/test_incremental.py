"""Incremental never means wrong: a killed command never blocks the next and ends with exactly the uninterrupted
result; bad input is one clear line. (Raw changes of every kind against a from-scratch run: test_ui.py.)"""

import os
import signal
import subprocess
import sys
import time

import pytest

from hm_recsys.paths import DataPaths
from hm_recsys_tests.conftest import (
    FAST,
    TEST_EXECUTOR,
    artifacts,
    assert_same_artifacts,
    cli,
    copy_world,
    run_count,
)

pytestmark = pytest.mark.slow


def _run_inside_a_step(paths: DataPaths, exclude: frozenset = frozenset()) -> str | None:
    """The id of a started run with a step begun and not ended, through Dagster's API."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(paths.dagster_home)) as instance:
        for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
            if run.run_id in exclude or run.parent_run_id in exclude:  # nor their retries (one retry per run)
                continue
            if any(s.start_time and not s.end_time for s in instance.get_run_step_stats(run.run_id)):
                return run.run_id
    return None


def _status(paths: DataPaths, run_id: str) -> str:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(paths.dagster_home)) as instance:
        return instance.get_run_by_id(run_id).status.value


def _start(paths: DataPaths, cfg, log) -> subprocess.Popen:
    env = {"HM_EXECUTOR": TEST_EXECUTOR, **os.environ, "HM_DATA_DIR": str(paths.root), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "hm_recsys.cli", "backtest", "--weeks", "1", "--config", str(cfg)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _kill_inside_a_step(paths: DataPaths, proc: subprocess.Popen, after_runs: int, ready=lambda: True,
                        exclude: frozenset = frozenset()) -> str:
    """kill -9 of the command's whole process group as soon as ``ready()`` and its ``after_runs``-th new run (or a later
    one, not in ``exclude``) is inside a step; returns that run's id, still STARTED in the instance (nobody is left to
    end it)."""
    before, deadline, victim = run_count(paths), time.time() + 900, None
    while victim is None:
        assert time.time() < deadline and proc.poll() is None, "the command ended before the kill point"
        if run_count(paths) - before >= after_runs and ready():
            victim = _run_inside_a_step(paths, exclude)
        if victim is None:
            time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _status(paths, victim) == "STARTED", "the step ended before the kill: no killed run to recover"
    return victim


def _recovered(out: str, victim: str) -> bool:
    """The command reported the killed run: failed by run monitoring (its code server is gone), launched again by run retries."""
    return f"run {victim[:8]} ended unfinished" in out and "run retries launch it again" in out


def test_a_killed_command_never_blocks_the_next(backtested, reseeded, tmp_path):
    """kill -9 of the whole process group while a run is inside a step, twice: the first command during tuning, then
    the command recovering from it during a later run of the ranking tail. Each next command reports the killed run
    and what it cleaned up, and the last ends with exactly the uninterrupted result."""
    paths, _ = backtested
    cfg, want = reseeded.config, reseeded.artifacts
    assert reseeded.new_runs >= 3  # the second kill lands inside the work, not after it
    killed = copy_world(paths, tmp_path / "killed")
    with open(tmp_path / "first.log", "wb") as log:
        first = _kill_inside_a_step(killed, _start(killed, cfg, log), after_runs=1)
    (killed.root / "candidates" / ".leftover.parquet.x.tmp").write_bytes(b"half")  # what a kill mid-write leaves

    second_log = tmp_path / "second.log"
    with open(second_log, "wb") as log:  # recovers the first kill's run, then is killed itself
        second = _kill_inside_a_step(killed, _start(killed, cfg, log), after_runs=2, exclude=frozenset({first}),
                                     ready=lambda: _recovered(second_log.read_text(errors="replace"), first))

    out = cli(killed, "backtest", "--weeks", "1", "--config", str(cfg))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert _recovered(out.stdout, second), out.stdout
    assert "removed leftover temporary" in out.stdout + second_log.read_text(errors="replace")
    assert not list(killed.root.rglob(".*.tmp"))
    assert_same_artifacts(artifacts(killed), want)


def test_a_folder_served_by_another_process_is_refused_in_one_line(backtested, tmp_path):
    from hm_recsys.defs.client import PID_FILE

    paths = copy_world(backtested[0], tmp_path / "served")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "dagster"])  # "dagster" in its cmdline
    try:
        (paths.dagster_home / PID_FILE).write_text(f"{holder.pid} dagster dev (test)\n")
        out = cli(paths, "predict", "--config", FAST)
    finally:
        holder.kill()
        (paths.dagster_home / PID_FILE).unlink(missing_ok=True)
    assert out.returncode == 75
    assert f"is served by pid {holder.pid}: dagster dev (test)" in out.stderr and out.stderr.count("\n") == 1


def test_bad_raw_file_is_one_line_and_keeps_the_good_tables(backtested, tmp_path):
    paths, _ = backtested
    bad = copy_world(paths, tmp_path / "bad")
    before = {p.name: p.read_bytes() for p in (bad.tables).glob("*.parquet")}
    arts = bad.raw / "articles.csv"
    text = arts.read_bytes().split(b"\n")
    text[3] = text[3].replace(b",", b",\xe9", 1)
    arts.write_bytes(b"\n".join(text))
    out = cli(bad, "backtest", "--config", FAST)
    assert out.returncode == 1
    error = out.stderr.strip().splitlines()[-1]  # the reason, as the command's last word
    assert error.startswith("hm-recsys: error: articles: ") and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert "articles.csv" in error and "column 'product_code'" in error and "data row 3" in error and "UTF-8" in error
    assert {p.name: p.read_bytes() for p in bad.tables.glob("*.parquet")} == before
