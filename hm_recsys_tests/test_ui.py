"""`dagster dev` alone runs the platform: on a fresh data folder the production week's final.csv appears
with no CLI call; raw changes of every kind, arriving with a new week of transactions, are rebuilt and the
next week appears as a partition and is built; and the end is exactly what a from-scratch run on the same
files gives (the shared backtest)."""

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
from hm_recsys_tests.conftest import FAST, PHOTOS, TEST_EXECUTOR, artifacts, automation_wants
from hm_recsys_tests.services import free_port

pytestmark = pytest.mark.slow
WAIT_S = 40 * 60


def _wait_for(path: Path, proc: subprocess.Popen, log: Path, timeout: float = WAIT_S) -> float:
    t0 = time.time()
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"dagster dev exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        if time.time() - t0 > timeout:
            pytest.fail(f"{path} did not appear within {timeout:.0f}s:\n{log.read_text()[-4000:]}")
        time.sleep(2)
    return time.time() - t0


def _without_last_week(transactions: Path) -> tuple[list[str], dt.date]:
    """Rewrites the file without its last week's rows; returns those rows and that week's first day."""
    header, *rows = transactions.read_text().splitlines(keepends=True)
    last_week = week_start(dt.date.fromisoformat(rows[-1][:10]))
    kept = [r for r in rows if dt.date.fromisoformat(r[:10]) < last_week]
    transactions.write_text(header + "".join(kept))
    return rows[len(kept):], last_week


def _replace_raw(dest: DataPaths, source: DataPaths) -> None:
    """``dest``'s raw files become ``source``'s, each file replaced by a rename (as an upload lands)."""
    for src in sorted(p for p in source.raw.rglob("*") if p.is_file()):
        target = dest.raw / src.relative_to(source.raw)
        if target.exists() and target.read_bytes() == src.read_bytes():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copy(src, tmp)
        tmp.replace(target)


def _image_embeddings_meta(paths: DataPaths) -> dict:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(paths.dagster_home)) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("image_embeddings"))
        return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_dagster_dev_follows_every_raw_change_and_new_weeks(base_world, backtested, tmp_path):
    """Two states of the raw folder under one `dagster dev`: the base world without its last week (built from
    nothing); then the shared world's files, with that week (conftest.backtested: inserted first rows shift every
    dense index, a price, a removed row, two new photos; the new photos are embedded alone, the others reused; the
    new week makes a new production week and scores the one held back). Then automation wants nothing more, and
    every artifact equals the shared from-scratch backtest of the same files, byte for byte. (One state per kind
    of change cost a third more; that new rows after a week's cutoff retrain none of its towers is
    test_tower_chain's and test_retrieval_weekly's.)"""
    shared = backtested[0]
    paths = DataPaths(tmp_path / "data")
    shutil.copytree(base_world.raw, paths.raw)
    shutil.copy(FAST, paths.root / "config.yaml")
    _, last_week = _without_last_week(paths.raw / "transactions_train.csv")
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
        _wait_until_idle(paths, proc, log)

        # every kind of change at once, and the held-back week arrives with them
        t0 = time.time()
        _replace_raw(paths, shared)
        second = (last_week + dt.timedelta(days=WEEK_DAYS)).strftime("%Y-%m-%d")
        took = _wait_for(paths.submission(second, "final"), proc, log)
        print(f"new production week {second}: final.csv after {took:.0f}s")
        _wait_for(paths.root / "reports" / first / "metrics.json", proc, log)  # the held-back week, now labelled
        _wait_until_idle(paths, proc, log)
        print(f"every change and the new week rebuilt after {time.time() - t0:.0f}s")
        meta = _image_embeddings_meta(paths)
        assert (meta["n_embedded"], meta["n_reused"]) == (2, PHOTOS)  # the two new photos alone, the others reused
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)

    # what the daemon left is what the next command's automation asks for: nothing (asked directly)
    assert automation_wants(paths, paths.root / "config.yaml") == {}
    # and the end is exactly what a from-scratch run on the same files gives (the shared backtest)
    assert {p.relative_to(paths.raw): p.read_bytes() for p in paths.raw.rglob("*") if p.is_file()} == \
        {p.relative_to(shared.raw): p.read_bytes() for p in shared.raw.rglob("*") if p.is_file()}
    assert _image_embeddings_meta(shared)["n_embedded"] == PHOTOS + 2  # from scratch: among all the others
    got, want = artifacts(paths), artifacts(shared)
    assert sorted(set(want) - set(got)) == []  # the daemon also built earlier weeks, which scratch did not
    assert [k for k in want if got[k] != want[k]] == []


def _wait_until_idle(paths: DataPaths, proc: subprocess.Popen, log: Path) -> None:
    """Until no run is queued or in progress and Dagster's automation, asked directly on the folder's instance
    (conftest.automation_wants, what the daemon's next tick would do), requests nothing. Waiting for the daemon's
    own quiet ticks instead cost 20-30 s after every state."""
    import dagster as dg

    from hm_recsys.defs.jobs import IN_PROGRESS

    t0 = time.time()
    with dg.DagsterInstance.from_config(str(paths.dagster_home)) as instance:
        def busy() -> bool:
            return bool(instance.get_runs_count(dg.RunsFilter(statuses=list(IN_PROGRESS))))

        while True:
            if proc.poll() is not None:
                pytest.fail(f"dagster dev exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
            if not busy() and automation_wants(paths, paths.root / "config.yaml") == {} and not busy():
                return
            if time.time() - t0 > WAIT_S:
                pytest.fail(f"runs still being launched after {WAIT_S}s:\n{log.read_text()[-4000:]}")
            time.sleep(2)
