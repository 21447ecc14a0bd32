"""The CLI's argument and error handling (the pipeline itself: test_dagster_pipeline.py)."""

import os
import subprocess
import sys

import pytest


def run(*args, env_extra=None, cwd=None):
    env = {**os.environ, **(env_extra or {})}
    env.pop("HM_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "hm_recsys.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


@pytest.mark.parametrize("order", ["before", "after"])
def test_data_dir_before_or_after_the_subcommand(tiny_world, order):
    args = ["--data-dir", str(tiny_world.root), "profile"] if order == "before" else ["profile", "--data-dir", str(tiny_world.root)]
    out = run(*args)
    assert out.returncode == 0, out.stderr
    assert "customers" in out.stdout


def test_bad_config_is_rejected_before_anything_runs(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("ranker_hparams: {n_trail: 5}\n")
    out = run("backtest", "--data-dir", str(tmp_path / "data"), "--config", str(cfg))
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0 and "ranker_hparams.n_trail" in out.stderr
    assert not (tmp_path / "data" / "dagster_home").exists()


def test_weeks_must_be_positive(tmp_path):
    out = run("backtest", "--weeks", "0", "--data-dir", str(tmp_path))
    assert out.returncode == 1 and "--weeks must be at least 1, got 0" in out.stderr


def test_the_daemon_the_cli_starts_ticks_slower_on_a_large_world(tmp_path):
    """Small worlds: 5 s between automation ticks (steps take seconds); a raw transactions file over 1 GiB: 30 s
    (steps take minutes, each tick costs the code server CPU); HM_AUTOMATION_INTERVAL_S, when set, wins."""
    from hm_recsys.defs.client import CLI_INTERVAL_S, LARGE_INTERVAL_S, LARGE_RAW_BYTES, cli_interval_s
    from hm_recsys.paths import DataPaths

    paths = DataPaths(tmp_path)
    assert cli_interval_s(paths, env={}) == CLI_INTERVAL_S == 5  # no raw file yet
    paths.raw.mkdir(parents=True)
    raw = paths.raw / "transactions_train.csv"
    raw.write_text("t_dat,customer_id,article_id,price,sales_channel_id\n")
    assert cli_interval_s(paths, env={}) == CLI_INTERVAL_S
    with open(raw, "r+b") as f:  # a sparse file: its size, not its blocks
        f.truncate(LARGE_RAW_BYTES + 1)
    assert cli_interval_s(paths, env={}) == LARGE_INTERVAL_S == 30
    assert cli_interval_s(paths, env={"HM_AUTOMATION_INTERVAL_S": "7"}) == 7
    with pytest.raises(ValueError, match="HM_AUTOMATION_INTERVAL_S='x'"):
        cli_interval_s(paths, env={"HM_AUTOMATION_INTERVAL_S": "x"})
