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
