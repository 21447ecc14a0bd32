"""Session fixtures: one tiny synthetic world, generated and ingested once for all tests."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hm_recsys.paths import DataPaths
from hm_recsys.tables import Tables, load_tables


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> DataPaths:
    """A tiny world's raw files (Kaggle schema + images) and its typed tables."""
    from hm_recsys.ingest import ingest
    from hm_recsys.synth import generate_world

    paths = DataPaths(tmp_path_factory.mktemp("tiny_world"))
    generate_world(paths.root, scale="tiny", seed=0)
    ingest(paths.raw, paths.tables)
    return paths


@pytest.fixture(scope="session")
def tiny_tables(tiny_world: DataPaths) -> Tables:
    return load_tables(tiny_world.tables)


FAST = str(Path(__file__).with_name("fast_config.yaml"))


# The end-to-end tests' runs execute their steps in the run's process: a process per step (the default,
# multiprocess) costs ~3x the wall time of a tiny world's week run. The default executor runs the browser
# test's runs and backfill (test_ui_browser.py); the cluster tests run Celery and compare their artifacts
# with these runs', byte for byte.
TEST_EXECUTOR = "in_process"


def cli(paths, *args, timeout=3600):
    env = {"HM_EXECUTOR": TEST_EXECUTOR, **os.environ, "HM_DATA_DIR": str(paths.root)}
    return subprocess.run([sys.executable, "-m", "hm_recsys.cli", *args], env=env, capture_output=True, text=True, timeout=timeout)


# Every artifact is compared byte for byte (training is seeded and single-process here), except the
# tracking and instance state (run ids, timestamps) and each tower's history.json (seconds per epoch).
STATE = {"dagster_home", "mlartifacts", "mlflow.db", ".hm_recsys.lock"}


def run_count(paths, stage: str | None = None, status: str | None = None) -> int:
    """Materialization runs in the data folder's instance (raw files are observed without a run), of one
    stage (``tables``, ``week``, ``features``, ``ranking``) / status if given; read through Dagster's API."""
    import dagster as dg

    filters = dg.RunsFilter(tags={"hm_recsys/stage": stage} if stage else {},
                            statuses=[dg.DagsterRunStatus(status)] if status else [])
    with dg.DagsterInstance.from_config(str(paths.dagster_home)) as instance:
        return instance.get_runs_count(filters)


def automation_wants(paths: DataPaths, config_file: str | Path, eval_weeks: int = 1) -> dict[str, set[str]]:
    """What Dagster's automation (the daemon's next tick, what the next command follows) would request now: asset ->
    partition keys ("" for an unpartitioned asset). Asked directly instead of running a command that finds out."""
    import dagster as dg

    from hm_recsys.definitions import build_definitions

    defs = build_definitions(paths, config_file=str(config_file), eval_weeks=eval_weeks)
    with dg.DagsterInstance.from_config(str(paths.dagster_home)) as instance:
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    wanted = {}
    for key in defs.resolve_asset_graph().get_all_asset_keys():
        if result.get_num_requested(key):
            wanted[key.to_user_string()] = {p or "" for p in result.get_requested_partitions(key)}
    return wanted


def copy_world(paths: DataPaths, dest: Path, with_state: bool = True) -> DataPaths:
    """A copy of a data folder: everything (instance included), or only its raw files (from scratch)."""
    if with_state:
        shutil.copytree(paths.root, dest)
    else:
        shutil.copytree(paths.raw, dest / "raw")
    return DataPaths(dest)


def artifacts(paths: DataPaths) -> dict[str, bytes]:
    """Every artifact's bytes by relative path (absolute paths inside them made relative).

    A replaced directory is a link to a version folder (``io.atomic_path``): read through the link, by its
    published name (``rglob`` follows no links), and the version folders themselves are skipped."""
    from hm_recsys.io import is_version_dir

    found = {}
    for folder, dirs, files in os.walk(paths.root, followlinks=True):
        dirs[:] = [d for d in dirs if not is_version_dir(d)]
        for name in files:
            p = Path(folder, name)
            rel = p.relative_to(paths.root)
            if not p.is_file() or rel.parts[0] in STATE or p.name == "history.json":
                continue
            found[str(rel)] = p.read_bytes().replace(str(paths.root).encode(), b"<root>")
    return dict(sorted(found.items()))


# Content-keyed caches (weekly shards, warm-start tower links): entries of older data stay beside the new
# ones, so a data folder holds at least what a from-scratch run writes there.
CACHES = {"tfrecord_shards", "tower_chain"}


def assert_same_artifacts(got: dict[str, bytes], want: dict[str, bytes]) -> None:
    """``got`` has exactly ``want``'s artifacts, byte for byte (and possibly more cache entries)."""
    extra = sorted(k for k in set(got) - set(want) if k.split("/")[0] not in CACHES)
    assert (sorted(set(want) - set(got)), extra) == ([], [])
    assert [k for k in want if got[k] != want[k]] == []


YESTERDAY = dt.date.today() - dt.timedelta(days=1)


def shifted_copy(world: DataPaths, dest: Path, last_day: dt.date, images: int = 0) -> DataPaths:
    """A world's raw files moved by whole weeks to end on ``last_day``, with the first ``images`` photos (by path)."""
    from hm_recsys.synth.shift import shift_world_to_end

    paths = DataPaths(dest)
    shutil.copytree(world.raw, paths.raw, ignore=shutil.ignore_patterns("images"))
    for image in sorted(world.images.rglob("*.jpg"))[:images]:
        (paths.images / image.relative_to(world.images)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(image, paths.images / image.relative_to(world.images))
    assert shift_world_to_end(paths.raw, last_day)[1] == last_day
    return paths


# The shared world keeps a few photos: enough for a new photo to join old ones (as every week on real data), few
# enough that embedding them costs seconds. The other articles take the has_image=0 path.
PHOTOS = 24


@pytest.fixture(scope="session")
def base_world(tiny_world, tmp_path_factory) -> DataPaths:
    """The tiny world's raw files (``PHOTOS`` of its photos) moved to end yesterday, as a live retailer's data does."""
    return shifted_copy(tiny_world, tmp_path_factory.mktemp("base_world"), YESTERDAY, images=PHOTOS)


@pytest.fixture(scope="session")
def backtested(base_world, tiny_world, tmp_path_factory):
    """``base_world`` with every kind of raw change applied (world_changes.py: inserted first rows shift every dense
    index, a price, a removed row, new photos), backtested from scratch for its newest labelled week through the CLI.
    The end-to-end tests share it, read only: each copies it (a command runs on a copy), or copies its raw files and
    compares what it builds with this result; test_ui.py makes the same changes incrementally under `dagster dev`,
    starting from ``base_world``."""
    from hm_recsys_tests.world_changes import apply_every_change

    paths = DataPaths(tmp_path_factory.mktemp("backtest"))
    shutil.copytree(base_world.raw, paths.raw)
    apply_every_change(paths, tiny_world)
    out = cli(paths, "backtest", "--weeks", "1", "--config", FAST)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    return paths, out.stdout


@pytest.fixture(scope="session")
def reseeded(backtested, tmp_path_factory):
    """A copy of the shared backtest rebuilt with another tuning seed (it is recorded in ranker_hparams.json, so
    the whole ranking tail must re-run: tuning, ranker, submissions, evaluation): the copy, the config, the
    uninterrupted result and how many runs it took (all of the ranking stage)."""
    from types import SimpleNamespace

    paths, _ = backtested
    root = tmp_path_factory.mktemp("reseeded")
    cfg = root / "seed1.yaml"
    cfg.write_text(Path(FAST).read_text().replace("n_trials: 2", "n_trials: 2, seed: 1"))
    copy = copy_world(paths, root / "uninterrupted")
    out = cli(copy, "backtest", "--weeks", "1", "--config", str(cfg))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return SimpleNamespace(paths=copy, config=cfg, artifacts=artifacts(copy), stdout=out.stdout,
                           new_runs=run_count(copy) - run_count(paths),
                           new_ranking_runs=run_count(copy, "ranking") - run_count(paths, "ranking"))
