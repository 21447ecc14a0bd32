"""Lineage is honest: an asset declares what it reads and reads what it declares. The week's purchases (labels)
are read by the evaluation only, which declares them, so its recall numbers and floor follow their arrival."""

import inspect

import dagster as dg
import polars as pl
import pytest

from hm_recsys import metrics, weeks
from hm_recsys.candidates import SOURCES, write_union_buckets
from hm_recsys.candidates.popular import best_sellers
from hm_recsys.defs import checks
from hm_recsys.defs.code_versions import reference_definitions
from hm_recsys.evaluation import candidate_recall, recall_metrics


@pytest.fixture(scope="module")
def graph():
    return reference_definitions().resolve_asset_graph()


def parents(graph, asset: str) -> set[str]:
    return {k.to_user_string() for k in graph.get(dg.AssetKey(asset)).parent_keys}


def test_ranker_features_declares_exactly_what_it_reads(graph):
    # the union (its rows and source columns), the image embeddings (_item_vectors), the tables as of the cutoff
    assert parents(graph, "ranker_features") == {"candidates", "image_embeddings", "history"}


def test_only_the_evaluation_reads_labels_and_it_declares_them(graph):
    recall_checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys if k.name == checks.RECALL_FLOOR}
    assert recall_checks == {("evaluation", checks.RECALL_FLOOR)}
    assert {"transactions", "candidates", "retrieval_candidates"} <= parents(graph, "evaluation")
    candidate_assets = ["retrieval_candidates", "candidates", *(f"{name}_candidates" for name in SOURCES)]
    for asset in candidate_assets:  # history(W) is all they declare of the transactions: no week-W purchase
        fn = graph.get(dg.AssetKey(asset)).assets_def.op.compute_fn.decorated_fn
        assert "labels(" not in inspect.getsource(fn) and "purchases=" not in inspect.getsource(fn), asset
        assert "transactions" not in parents(graph, asset), asset


def test_candidate_recall_reads_the_files_as_written(tiny_tables, tmp_path):
    week = weeks.TargetWeek(weeks.week_start(tiny_tables.transactions["t_dat"].max()))
    truth = weeks.labels(tiny_tables.transactions, week)
    assert truth.height
    frames = {name: SOURCES[name](tiny_tables, week) for name in ("repurchase", "popular")}
    frames["two_tower"] = frames["popular"].filter(pl.col("rank") < 20)  # stands in for the towers' top-k
    paths = {}
    for name, frame in frames.items():
        paths[name] = tmp_path / f"{name}.parquet"
        frame.write_parquet(paths[name])
    info = write_union_buckets(paths, tmp_path / "union", tiny_tables.n_customers, 333, purchases=truth)

    recall = candidate_recall(tiny_tables, week.key, paths["two_tower"], tmp_path / "union")
    k = int(frames["two_tower"]["rank"].max()) + 1
    assert recall["k"] == k
    assert recall["two_tower"] == pytest.approx(metrics.recall_at_k(frames["two_tower"], truth, k), abs=1e-12)
    buyers = truth.select("customer_idx").unique()
    popular = buyers.join(best_sellers(tiny_tables, week, days=7, top_n=k).select("article_idx"), how="cross")
    assert recall["last_week_popular"] == pytest.approx(metrics.recall(popular, truth), abs=1e-12)
    assert recall["sources"] == pytest.approx({n: s["recall"] for n, s in info["per_source"].items()}, abs=1e-12)
    assert recall["cold_start"]["k"] == k
    flat = recall_metrics(recall)
    assert flat[f"recall@{k}/two_tower"] == recall["two_tower"] and flat["recall/union"] == recall["sources"]["union"]

    assert candidate_recall(tiny_tables, week.shift(1).key, paths["two_tower"], tmp_path / "union") == {}  # no purchases yet
    assert set(candidate_recall(tiny_tables, week.key, tmp_path / "missing.parquet", tmp_path / "union")) == {"sources"}
