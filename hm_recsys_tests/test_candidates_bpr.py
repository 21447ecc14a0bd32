"""BPR: reproducible (one thread, seeded), point-in-time, a ranker feature, and switchable by the config file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from hm_recsys import io, schema, weeks
from hm_recsys.candidates import SOURCES, bpr_candidates, run_sources, union_candidates
from hm_recsys_tests.leakage import perturb_future
from hm_recsys_tests.ranking_toy_world import LAST_WEEK, toy_world

ROOT = Path(__file__).resolve().parents[1]
FAST = {"factors": 8, "iterations": 20}


@pytest.fixture(scope="module")
def tables():
    return toy_world()


@pytest.fixture(scope="module")
def buyers(tables) -> pl.Series:
    return weeks.labels(tables.transactions, LAST_WEEK)["customer_idx"].unique().sort()


@pytest.fixture(scope="module")
def bpr(tables, buyers) -> pl.DataFrame:
    return bpr_candidates(tables, LAST_WEEK, buyers, seed=7, **FAST)


def test_same_data_and_seed_give_the_same_candidates_in_another_process(tables, buyers, bpr, tmp_path):
    assert bpr.height and bpr["rank"].max() == 29
    assert_frame_equal(bpr_candidates(tables, LAST_WEEK, buyers, seed=7, **FAST), bpr)  # scores too: same factors
    out = tmp_path / "bpr.parquet"
    code = (
        "import sys; from hm_recsys import weeks; from hm_recsys.candidates import bpr_candidates\n"
        "from hm_recsys_tests.ranking_toy_world import LAST_WEEK, toy_world\n"
        "t = toy_world(); b = weeks.labels(t.transactions, LAST_WEEK)['customer_idx'].unique().sort()\n"
        f"bpr_candidates(t, LAST_WEEK, b, seed=7, **{FAST!r}).write_parquet(sys.argv[1])\n"
    )
    subprocess.run([sys.executable, "-c", code, str(out)], cwd=ROOT, check=True, timeout=300)
    assert_frame_equal(pl.read_parquet(out), bpr)


def test_another_seed_gives_other_candidates(tables, buyers, bpr):
    other = bpr_candidates(tables, LAST_WEEK, buyers, seed=8, **FAST)
    assert not other.equals(bpr)


@pytest.mark.parametrize("back", [0, 3])
def test_ignores_the_target_week_and_later(tables, back):
    """Week W's candidates stay the same when W's and later transactions are replaced by random ones."""
    week = LAST_WEEK.shift(-back)
    want = bpr_candidates(tables, week, **FAST)
    assert want.height
    assert_frame_equal(bpr_candidates(perturb_future(tables, week, seed=back + 1), week, **FAST), want)


def test_score_and_rank_become_ranker_features(tables, buyers):
    from hm_recsys.ranking.features import build_features, feature_columns

    union = union_candidates(run_sources(tables, LAST_WEEK, buyers, params={"als": FAST, "bpr": FAST}))
    assert {"bpr_score", "bpr_rank"} <= set(feature_columns(build_features(tables, LAST_WEEK, union)))


def test_config_switch_is_validated_and_on_by_default(tmp_path):
    from hm_recsys.defs import config
    from hm_recsys.defs.versioning import code_version

    base = config.resolve(tmp_path)["candidates"]
    path = tmp_path / "cfg.yaml"
    path.write_text("candidates: {bpr: false, bucket_customers: 7}\n")
    off = config.resolve(tmp_path, path)["candidates"]
    assert base().bpr and not off().bpr and off().bucket_customers == 7
    assert code_version("1", off) != code_version("1", base)
    path.write_text("candidates: {bpr: maybe}\n")
    with pytest.raises(config.ConfigError, match="candidates.bpr: Input should be a valid boolean"):
        config.read_config(path)


@pytest.mark.parametrize("bpr_on", [True, False])
def test_switch_leaves_bpr_out_of_the_graph_and_the_union(tables, buyers, tmp_path, bpr_on):
    """Through the Dagster assets: off, no ``bpr_candidates`` asset and no ``bpr_`` column in the union."""
    import dagster as dg

    from hm_recsys.definitions import build_definitions
    from hm_recsys.defs.resources import DataResource
    from hm_recsys.paths import DataPaths

    paths = DataPaths(tmp_path / "data")
    for name, frame in [(schema.ARTICLES_TABLE, tables.articles), (schema.CUSTOMERS_TABLE, tables.customers),
                        (schema.TRANSACTIONS_TABLE, tables.transactions)]:
        io.write_parquet(frame, paths.tables / name)
    sources = run_sources(tables, LAST_WEEK, buyers, params={"als": FAST, "bpr": FAST})
    for name, frame in [*sources.items(), ("two_tower", sources["popular"])]:
        io.write_parquet(frame, paths.week_dir("candidates", LAST_WEEK.key) / f"{name}.parquet")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"candidates: {{bpr: {str(bpr_on).lower()}}}\n")

    defs = build_definitions(paths, config_file=cfg)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert ("bpr_candidates" in keys) == bpr_on
    assert {f"{n}_candidates" for n in SOURCES if n != "bpr"} <= keys
    asset = defs.get_assets_def("candidates")
    result = asset(dg.build_asset_context(partition_key=LAST_WEEK.key), data=DataResource(data_dir=str(paths.root)))
    union = pl.read_parquet(Path(str(result.metadata["path"].path)) / "*.parquet")
    assert ("bpr_rank" in union.columns) == bpr_on and ("bpr_score" in union.columns) == bpr_on
    assert "als_rank" in union.columns


def test_iterations_follow_the_number_of_bought_pairs(tables, buyers):
    """The sample cap leaves the demo world's 238k bought pairs all 100 iterations and the full world's 7.9M 31; a
    cap below one pass still fits one, and a capped fit is another fit (fewer iterations, other factors)."""
    from hm_recsys.candidates.mf import bpr_iterations

    assert bpr_iterations(238_218, 100, 250_000_000) == 100
    assert bpr_iterations(7_949_952, 100, 250_000_000) == 31
    assert bpr_iterations(10, 100, 5) == 1
    many = bpr_candidates(tables, LAST_WEEK, buyers, seed=7, **{**FAST, "iterations": 8})
    capped = bpr_candidates(tables, LAST_WEEK, buyers, seed=7, **{**FAST, "iterations": 8, "max_samples": 1})
    assert not many.equals(capped)
