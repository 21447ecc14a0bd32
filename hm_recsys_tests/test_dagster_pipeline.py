"""The code location loads, and a tiny world runs end to end through Dagster with the CLI."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hm_recsys.metrics import average_precision_at_k

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
FAST = str(Path(__file__).with_name("fast_config.yaml"))


def cli(paths, *args, timeout=1500):
    env = {**os.environ, "HM_DATA_DIR": str(paths.root)}
    return subprocess.run([sys.executable, "-m", "hm_recsys.cli", *args], env=env, capture_output=True, text=True, timeout=timeout)


def run_count(paths) -> int:
    """Materialization runs in the instance (each CLI call also records one observation of the raw files)."""
    import sqlite3

    with sqlite3.connect(paths.dagster_home / "history" / "runs.db") as db:
        return db.execute("select count(*) from runs where pipeline_name not like '%observation%'").fetchone()[0]


@pytest.fixture(scope="module")
def backtested(tiny_world, tmp_path_factory):
    """A copy of the tiny world's raw files, backtested for its last week through the CLI."""
    import shutil

    from hm_recsys.paths import DataPaths

    paths = DataPaths(tmp_path_factory.mktemp("backtest"))
    shutil.copytree(tiny_world.raw, paths.raw)
    out = cli(paths, "backtest", "--weeks", "1", "--config", FAST)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    return paths, out.stdout


def test_definitions_validate(tiny_world):
    env = {**os.environ, "HM_DATA_DIR": str(tiny_world.root)}
    out = subprocess.run([str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-m", "hm_recsys.definitions"],
                         env=env, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def test_definitions_snapshot(tiny_world, monkeypatch):
    """Every asset, job and schedule the platform promises is defined (a rename fails loudly)."""
    from hm_recsys.definitions import build_definitions

    defs = build_definitions(tiny_world)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"raw_transactions", "articles", "customers", "transactions", "popular_all_time", "popular_last_week",
            "repurchase_popular", "evaluation", "image_embeddings", "tfrecords", "two_tower_model", "two_tower_finetuned",
            "retrieval_candidates", "repurchase_candidates", "same_product_candidates", "popular_candidates",
            "age_popular_candidates", "bought_together_candidates", "als_candidates", "candidates", "ranker_features",
            "ranker_hparams", "ranker_model", "final"} <= keys
    for asset in ("image_embeddings", "two_tower_model", "two_tower_finetuned", "retrieval_candidates"):
        assert defs.get_assets_def(asset).op.pool == "gpu"
    assert defs.get_assets_def("ranker_features").op.pool is None
    for job in ("tables_job", "images_job", "retrieval_job", "weekly_job"):
        defs.resolve_job_def(job)
    assert defs.get_schedule_def("weekly_retraining").cron_schedule == "0 6 * * 3"
    weeks = defs.get_assets_def("evaluation").partitions_def
    last = tiny_world.tables / "transactions.parquet"
    import polars as pl

    assert weeks.get_last_partition_key() > str(pl.read_parquet(last)["t_dat"].max())


def test_backtest_prints_map_and_writes_reports(backtested):
    paths, stdout = backtested
    reports = list(paths.root.glob("reports/*/metrics.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    assert {"popular_all_time", "popular_last_week", "repurchase_popular", "two_tower", "final"} <= set(report["map12"])
    assert report["buyers"] > 0
    for name in report["map12"]:
        assert name in stdout


def test_csvs_score_the_same_with_an_independent_scorer(backtested):
    """Re-score every written CSV with plain csv + the per-customer Kaggle apk."""
    paths, _ = backtested
    report_path = next(paths.root.glob("reports/*/metrics.json"))
    report = json.loads(report_path.read_text())
    week = report["week"]
    import datetime as dt

    start = dt.date.fromisoformat(week)
    end = start + dt.timedelta(days=7)
    truth: dict[str, set[str]] = {}
    with open(paths.raw / "transactions_train.csv") as fh:
        for row in csv.DictReader(fh):
            if start <= dt.date.fromisoformat(row["t_dat"]) < end:
                truth.setdefault(row["customer_id"], set()).add(row["article_id"])
    for name, value in report["map12"].items():
        with open(paths.submission(week, name)) as fh:
            preds = {r["customer_id"]: r["prediction"].split() for r in csv.DictReader(fh)}
        independent = sum(average_precision_at_k(preds.get(c, []), items) for c, items in truth.items()) / len(truth)
        assert independent == pytest.approx(value, abs=1e-12), name


def test_rerun_skips_what_is_up_to_date_and_reruns_what_was_reconfigured(backtested, tmp_path):
    paths, _ = backtested
    runs = run_count(paths)
    out = cli(paths, "backtest", "--weeks", "1", "--config", FAST)
    assert out.returncode == 0, out.stderr[-3000:]
    assert run_count(paths) == runs, out.stdout  # nothing changed: no run at all
    final = next(paths.root.glob("submissions/*/final.csv")).stat().st_mtime_ns
    two_tower = next(paths.root.glob("submissions/*/two_tower.csv")).stat().st_mtime_ns
    changed = tmp_path / "more_trials.yaml"
    changed.write_text(Path(FAST).read_text().replace("n_trials: 2", "n_trials: 3"))
    out = cli(paths, "backtest", "--weeks", "1", "--config", str(changed))
    assert out.returncode == 0, out.stderr[-3000:]
    assert run_count(paths) == runs + 1, out.stdout  # only the target week's ranking tail re-ran
    assert next(paths.root.glob("submissions/*/final.csv")).stat().st_mtime_ns > final
    assert next(paths.root.glob("submissions/*/two_tower.csv")).stat().st_mtime_ns == two_tower


def test_predict_writes_the_production_week(backtested):
    paths, _ = backtested
    out = cli(paths, "predict", "--config", FAST)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    key = max(p.name for p in (paths.root / "submissions").iterdir())
    lines = paths.submission(key, "final").read_text().splitlines()
    assert lines[0] == "customer_id,prediction"
    assert len(lines) - 1 == len((paths.raw / "customers.csv").read_text().splitlines()) - 1


def test_mlflow_runs_are_ended(backtested):
    from mlflow.tracking import MlflowClient

    paths, _ = backtested
    client = MlflowClient(paths.mlflow_uri)
    exp = client.get_experiment_by_name("hm_recsys")
    runs = client.search_runs([exp.experiment_id])
    assert runs and all(r.info.status == "FINISHED" for r in runs)
    assert any(k.startswith("map12_") for r in runs for k in r.data.metrics)
