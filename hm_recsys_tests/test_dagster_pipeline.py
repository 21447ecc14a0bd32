"""The code location loads, and a tiny world runs end to end through Dagster with the CLI."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hm_recsys_tests.conftest import FAST, automation_wants, cli, copy_world, run_count
from hm_recsys_tests.test_metrics import kaggle_map12

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def test_definitions_validate(tiny_world):
    env = {**os.environ, "HM_DATA_DIR": str(tiny_world.root)}
    out = subprocess.run([str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-m", "hm_recsys.definitions"],
                         env=env, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def test_definitions_snapshot(tiny_world, monkeypatch):
    """Every asset, check, job, sensor and schedule the platform promises is defined (a rename fails loudly)."""
    import dagster as dg
    import polars as pl

    from hm_recsys.definitions import build_definitions

    defs = build_definitions(tiny_world)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"raw_transactions", "raw_images", "articles", "customers", "transactions", "popular_all_time", "popular_last_week",
            "repurchase_popular", "evaluation", "image_embeddings", "tfrecords", "two_tower_model", "two_tower_finetuned",
            "retrieval_candidates", "repurchase_candidates", "same_product_candidates", "popular_candidates",
            "age_popular_candidates", "bought_together_candidates", "als_candidates", "bpr_candidates", "candidates", "ranker_features",
            "ranker_hparams", "ranker_model", "final"} <= keys
    for asset in ("image_embeddings", "two_tower_model", "two_tower_finetuned", "retrieval_candidates", "ranker_hparams", "ranker_model"):
        assert defs.get_assets_def(asset).op.pool == "gpu", asset
    assert defs.get_assets_def("ranker_features").op.pool is None
    for asset in ("two_tower_model", "two_tower_finetuned", "retrieval_candidates"):  # each reads the week's TFRecords
        assert dg.AssetKey("tfrecords") in graph.get(dg.AssetKey(asset)).parent_keys, asset
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.is_materializable:
            assert node.automation_condition is not None, key
            assert node.description and "``" not in node.description and "\n" not in node.description.strip(), key
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert {("final", "one_row_per_customer_12_known_articles"), ("transactions", "keys_unique_and_joinable"),
            ("als_candidates", "candidate_contract"), ("bpr_candidates", "candidate_contract"),
            ("evaluation", "recall_at_least_last_week_popular"),
            ("evaluation", "final_at_least_best_heuristic")} <= checks
    for job in ("tables_job", "week_job", "features_job", "ranking_job"):
        defs.resolve_job_def(job)
    assert defs.get_schedule_def("weekly_retraining").default_status == dg.DefaultScheduleStatus.RUNNING
    for sensor in ("rebuild_tables", "rebuild_week", "rebuild_features", "rebuild_ranking", "raw_files"):
        assert defs.get_sensor_def(sensor).default_status == dg.DefaultSensorStatus.RUNNING
    weeks = defs.get_assets_def("ranker_features").partitions_def
    ranking = defs.get_assets_def("final").partitions_def
    last = pl.read_parquet(tiny_world.tables / "transactions.parquet")["t_dat"].max()
    assert weeks.get_last_partition_key() == ranking.get_last_partition_key() > str(last)
    assert ranking.get_first_partition_key() == weeks.get_partition_keys()[2]  # two training weeks first


def test_backtest_prints_map_and_writes_reports(backtested):
    paths, stdout = backtested
    reports = [json.loads(p.read_text()) for p in sorted(paths.root.glob("reports/*/metrics.json"))]
    # the newest labelled week is scored; the production week's report has no purchases to score yet
    assert [bool(r["map12"]) for r in reports] == [True, False]
    report = reports[0]
    assert {"popular_all_time", "popular_last_week", "repurchase_popular", "two_tower", "final"} <= set(report["map12"])
    assert report["buyers"] > 0
    for name in report["map12"]:
        assert name in stdout


def test_one_code_server_launches_every_run_of_a_command(backtested):
    """The daemon the CLI starts is pointed at the one code server the command started (client.start_code_server):
    every run of the backtest was launched by the server its workspace names, none by a server of the daemon's own
    (which it would replace at every 60-s workspace reload)."""
    import dagster as dg
    import yaml

    paths, _ = backtested
    entry = yaml.safe_load((paths.dagster_home / "workspace.yaml").read_text())["load_from"][0]["grpc_server"]
    with dg.DagsterInstance.from_config(str(paths.dagster_home)) as instance:
        runs = instance.get_runs()
    assert runs and {json.loads(r.tags[".dagster/grpc_info"]).get("port") for r in runs} == {entry["port"]}


def test_csvs_score_the_same_with_an_independent_scorer(backtested):
    """Re-score every written CSV with plain csv + the tests' own Kaggle MAP@12 (test_metrics, not the
    project's scorer): the mean AP@12 over the week's buyers (a buyer missing from the file scores 0)."""
    paths, _ = backtested
    report_path = sorted(paths.root.glob("reports/*/metrics.json"))[0]  # the labelled week
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
        independent = kaggle_map12(preds, truth)
        assert independent == pytest.approx(value, abs=1e-12), name


def test_rerun_skips_what_is_up_to_date_and_reruns_what_was_reconfigured(backtested, reseeded, tmp_path):
    paths, _ = backtested
    again = copy_world(paths, tmp_path / "again")  # the shared backtest stays as built (other tests read it)
    runs = run_count(again)
    out = cli(again, "backtest", "--weeks", "1", "--config", FAST)
    assert out.returncode == 0, out.stderr[-3000:]
    assert run_count(again) == runs, out.stdout  # nothing changed: no run at all
    assert "everything up to date" in out.stdout
    # another tuning seed (``reseeded``: a copy of ``paths``, file times kept, rebuilt with it): only the ranking
    # tail of the two scored weeks (the newest labelled one and production) re-ran: tuning, then each layer
    # below it whose input changed (one round each), nothing upstream
    copy = reseeded.paths

    def files(pattern: str, read=lambda p: p.stat().st_mtime_ns) -> dict:
        return {p.relative_to(paths.root): read(p) for p in paths.root.glob(pattern)}

    def now(pattern: str, read=lambda p: p.stat().st_mtime_ns) -> dict:
        return {p.relative_to(copy.root): read(p) for p in copy.root.glob(pattern)}

    assert 2 <= reseeded.new_runs == reseeded.new_ranking_runs, reseeded.stdout
    hparams = files("models/*/ranker_hparams.json", Path.read_bytes)
    assert hparams and all(now("models/*/ranker_hparams.json", Path.read_bytes)[k] != v for k, v in hparams.items())
    finals = files("submissions/*/final.csv")
    assert finals and all(now("submissions/*/final.csv")[k] > t for k, t in finals.items())
    assert now("submissions/*/two_tower.csv") == files("submissions/*/two_tower.csv")
    # back to the old value: Dagster's automation (what the next command, the daemon and the UI follow) wants the
    # tuning of the two scored weeks again and nothing else yet; asked directly instead of running that tail again
    wanted = automation_wants(copy, FAST)
    scored = {p.parent.name for p in copy.root.glob("models/*/ranker_hparams.json")}
    assert wanted == {"ranker_hparams": scored} and len(scored) == 2, wanted


def test_mlflow_runs_are_ended(backtested):
    from mlflow.tracking import MlflowClient

    paths, _ = backtested
    client = MlflowClient(paths.mlflow_uri)
    exp = client.get_experiment_by_name("hm_recsys")
    runs = client.search_runs([exp.experiment_id])
    assert runs and all(r.info.status == "FINISHED" for r in runs)
    assert any(k.startswith("map12_") for r in runs for k in r.data.metrics)
