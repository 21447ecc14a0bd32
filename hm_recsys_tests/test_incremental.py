"""Incremental never means wrong: after a change to the raw files one command gives exactly the
from-scratch result; a killed command never blocks the next; bad input is one clear line."""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hm_recsys.paths import DataPaths
from hm_recsys_tests.conftest import FAST, cli
from hm_recsys_tests.test_dagster_pipeline import run_count

pytestmark = pytest.mark.slow
# Deterministic artifacts compared byte for byte (training is seeded and single-process here).
ARTIFACTS = ["submissions/*/*.csv", "reports/*/metrics.json", "tables/*.parquet", "candidates/*/*.parquet"]


def copy_world(paths: DataPaths, dest: Path, with_state: bool = True) -> DataPaths:
    """A copy of a data folder: everything (instance included), or only its raw files (from scratch)."""
    if with_state:
        shutil.copytree(paths.root, dest)
    else:
        shutil.copytree(paths.raw, dest / "raw")
    return DataPaths(dest)


def artifacts(paths: DataPaths) -> dict[str, bytes]:
    return {str(p.relative_to(paths.root)): p.read_bytes() for pattern in ARTIFACTS for p in sorted(paths.root.glob(pattern))}


def change_one_price(paths: DataPaths) -> None:
    tx = paths.raw / "transactions_train.csv"
    lines = tx.read_text().splitlines(keepends=True)
    row = len(lines) * 3 // 4  # an old week: every target week's history changes
    date, customer, article, price, channel = lines[row].rstrip("\n").split(",")
    lines[row] = f"{date},{customer},{article},{float(price) * 2:.6f},{channel}\n"
    tx.write_text("".join(lines))


def insert_article(paths: DataPaths) -> None:
    """A new, valid article as the first data row: every later article_idx shifts by one."""
    arts = paths.raw / "articles.csv"
    header, first, *rest = arts.read_text().splitlines(keepends=True)
    fields = first.split(",")
    fields[0] = "0999999001"
    arts.write_text(header + ",".join(fields) + first + "".join(rest))


def test_one_command_after_a_change_equals_from_scratch(backtested, tmp_path):
    """Two changes at once (one run of each costs as much as both): a price in an old week, and an article
    inserted as the first row, which shifts every later article_idx under the tables built before."""
    paths, _ = backtested
    incremental = copy_world(paths, tmp_path / "incremental")
    change_one_price(incremental)
    insert_article(incremental)
    out = cli(incremental, "backtest", "--weeks", "1", "--config", FAST)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    runs = run_count(incremental)
    again = cli(incremental, "backtest", "--weeks", "1", "--config", FAST)
    assert again.returncode == 0 and run_count(incremental) == runs, again.stdout  # converged in one command

    scratch = copy_world(incremental, tmp_path / "scratch", with_state=False)
    out = cli(scratch, "backtest", "--weeks", "1", "--config", FAST)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    got, want = artifacts(incremental), artifacts(scratch)
    assert sorted(got) == sorted(want)
    assert [k for k in want if got[k] != want[k]] == []


def _runs_started(paths: DataPaths) -> int:
    with sqlite3.connect(paths.dagster_home / "history" / "runs.db") as db:
        return db.execute("select count(*) from runs where status = 'STARTED'").fetchone()[0]


def test_a_killed_command_never_blocks_the_next(backtested, tmp_path):
    paths, _ = backtested
    killed = copy_world(paths, tmp_path / "killed")
    cfg = tmp_path / "trials3.yaml"
    cfg.write_text(Path(FAST).read_text().replace("n_trials: 2", "n_trials: 3"))
    env = {**os.environ, "HM_DATA_DIR": str(killed.root)}
    proc = subprocess.Popen([sys.executable, "-m", "hm_recsys.cli", "backtest", "--config", str(cfg)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while _runs_started(killed) == 0 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    time.sleep(3)  # inside a step
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    (killed.root / "candidates" / ".leftover.parquet.x.tmp").write_bytes(b"half")  # what a kill mid-write leaves

    out = cli(killed, "backtest", "--config", str(cfg))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "marked failed, pool slots freed" in out.stdout
    assert "removed leftover temporary" in out.stdout
    assert not list(killed.root.rglob(".*.tmp"))

    uninterrupted = copy_world(paths, tmp_path / "uninterrupted")
    out = cli(uninterrupted, "backtest", "--config", str(cfg))
    assert out.returncode == 0, out.stderr[-3000:]
    assert artifacts(killed) == artifacts(uninterrupted)


def test_two_commands_on_one_folder(backtested):
    from hm_recsys.defs.launcher import folder_lock

    paths, _ = backtested
    with folder_lock(paths, "test"):
        out = cli(paths, "predict", "--config", FAST)
    assert out.returncode == 75
    assert "is busy: hm-recsys test" in out.stderr and out.stderr.count("\n") == 1


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
