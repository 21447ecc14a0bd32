"""`dagster dev` alone runs the platform: on a fresh data folder the production week's final.csv appears
with no CLI call, and when a new week of transactions is appended the next week appears as a partition
and is built, without rebuilding what the new rows cannot affect."""

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hm_recsys.paths import DataPaths
from hm_recsys.weeks import WEEK_DAYS, week_start
from hm_recsys_tests.conftest import TEST_EXECUTOR, artifacts, cli
from hm_recsys_tests.services import free_port

pytestmark = pytest.mark.slow
FAST = Path(__file__).with_name("fast_config.yaml")
WAIT_S = 40 * 60


def _wait_for(path: Path, proc: subprocess.Popen, log: Path, timeout: float = WAIT_S) -> float:
    t0 = time.time()
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"dagster dev exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        if time.time() - t0 > timeout:
            pytest.fail(f"{path} did not appear within {timeout:.0f}s:\n{log.read_text()[-4000:]}")
        time.sleep(5)
    return time.time() - t0


@pytest.fixture
def held_back_world(backtested, tmp_path):
    """The shared end-to-end world's raw files with their last week of transactions held back, and the
    held-back lines (appended again, the files are the shared world's: its backtest is the from-scratch result)."""
    paths = DataPaths(tmp_path / "data")
    shutil.copytree(backtested[0].raw, paths.raw)
    shutil.copy(FAST, paths.root / "config.yaml")
    tx = paths.raw / "transactions_train.csv"
    header, *rows = tx.read_text().splitlines(keepends=True)
    last_week = week_start(dt.date.fromisoformat(rows[-1][:10]))
    kept = [r for r in rows if dt.date.fromisoformat(r[:10]) < last_week]
    tx.write_text(header + "".join(kept))
    return paths, rows[len(kept):], last_week


def test_dagster_dev_builds_the_production_week_and_follows_new_data(held_back_world, backtested, tmp_path):
    paths, held, last_week = held_back_world
    port = free_port()
    log = tmp_path / "dagster_dev.log"
    # the automation sensors tick every 5 s instead of 30 (a deployment setting, as the CLI's own daemon uses)
    env = {"HM_EXECUTOR": TEST_EXECUTOR, **os.environ, "HM_DATA_DIR": str(paths.root), "HM_AUTOMATION_INTERVAL_S": "5"}
    env.pop("HM_CONFIG", None)
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "hm_recsys.cli", "ui", "--port", str(port)], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        first = last_week.strftime("%Y-%m-%d")  # the production week while the last week is held back
        took = _wait_for(paths.submission(first, "final"), proc, log)
        print(f"production week {first}: final.csv after {took:.0f}s")
        towers = {p: p.stat().st_mtime_ns for p in (paths.root / "models").glob("*/two_tower/*") if p.is_file()}
        assert towers

        with open(paths.raw / "transactions_train.csv", "a") as fh:  # the new week arrives
            fh.write("".join(held))
        second = (last_week + dt.timedelta(days=WEEK_DAYS)).strftime("%Y-%m-%d")
        took = _wait_for(paths.submission(second, "final"), proc, log)
        print(f"new production week {second}: final.csv after {took:.0f}s")
        _wait_for(paths.root / "reports" / first / "metrics.json", proc, log)  # the held-back week, now labelled
        _wait_until_idle(paths, proc, log)
        # the new rows are after every earlier week's cutoff: no earlier tower was retrained
        assert {p: p.stat().st_mtime_ns for p in towers} == towers
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)

    # what the daemon left is what the CLI asks for: nothing to do
    out = cli(paths, "backtest", "--weeks", "1")
    assert out.returncode == 0 and "everything up to date" in out.stdout, out.stdout[-3000:] + out.stderr[-3000:]
    # and the appended week gave exactly what a from-scratch run on all the data gives (the shared backtest)
    assert (paths.raw / "transactions_train.csv").read_bytes() == (backtested[0].raw / "transactions_train.csv").read_bytes()
    got, want = artifacts(paths), artifacts(backtested[0])
    assert sorted(set(want) - set(got)) == []  # the daemon also built earlier weeks, which scratch did not
    assert [k for k in want if got[k] != want[k]] == []


def _wait_until_idle(paths: DataPaths, proc: subprocess.Popen, log: Path) -> None:
    """Until no run is in progress and every automation sensor has finished a tick, begun after the last run
    ended, that requested nothing (what the CLI waits for: ``client.automation_quiet_since``)."""
    import dagster as dg

    from hm_recsys.defs.client import automation_quiet_since
    from hm_recsys.defs.jobs import IN_PROGRESS

    t0 = time.time()
    with dg.DagsterInstance.from_config(str(paths.dagster_home)) as instance:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"dagster dev exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
            if not instance.get_runs_count(dg.RunsFilter(statuses=list(IN_PROGRESS))):
                ends = [r.end_time for r in instance.get_run_records() if r.end_time]
                if automation_quiet_since(instance, max(ends, default=t0)):
                    return
            if time.time() - t0 > WAIT_S:
                pytest.fail(f"runs still being launched after {WAIT_S}s:\n{log.read_text()[-4000:]}")
            time.sleep(2)
