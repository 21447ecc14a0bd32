"""Ranker inference cost: candidates scored per second, and the time and peak memory of a whole `final` partition.

A model is trained on the buyers of the ``--train-weeks`` weeks before the production week (the week after
the data), then a fresh process runs the production partition for every customer: each candidate source,
the union, the features, scoring, top-12 and the popular fill; its peak RSS is the partition's memory.
The same partition is run again with ``rank_in_chunks`` to show the memory a chunked run needs. Full scale
is extrapolated from the measured pieces (see the printed assumptions).

    .venv/bin/python benchmarks/ranker_inference.py --data-dir data
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

FULL = {"customers": 1_371_980, "articles": 105_542, "transactions": 31_788_324}


def _rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _partition(tables_dir: str, model_path: str, week_key: str, chunk_customers: int, out: mp.Queue) -> None:
    """The production partition in a fresh process: returns stage seconds, sizes and peak RSS."""
    from hm_recsys import baselines
    from hm_recsys.candidates import SOURCES, run_sources, union_candidates
    from hm_recsys.ranking import build_features, load_model, rank_in_chunks, score, top_k
    from hm_recsys.submission import fill_popular
    from hm_recsys.tables import load_tables
    from hm_recsys.weeks import TargetWeek

    began = time.perf_counter()
    tables = load_tables(tables_dir)
    week = TargetWeek.from_key(week_key)
    model = load_model(model_path)
    res: dict = {"load_s": time.perf_counter() - began, "rss_after_load_gib": _rss_gib()}
    sources = {}
    for name in SOURCES:
        t0 = time.perf_counter()
        sources.update(run_sources(tables, week, names=[name]))
        res[f"source_{name}_s"] = time.perf_counter() - t0
        res[f"source_{name}_rows"] = sources[name].height
    t0 = time.perf_counter()
    union = union_candidates(sources)
    res["union_s"] = time.perf_counter() - t0
    res["candidates"] = union.height
    res["union_bytes"] = union.estimated_size()
    del sources
    if chunk_customers:
        t0 = time.perf_counter()
        ranked = rank_in_chunks(model, tables, week, union, chunk_customers=chunk_customers)
        res["features_and_score_s"] = time.perf_counter() - t0
    else:
        t0 = time.perf_counter()
        features = build_features(tables, week, union)
        res["features_s"] = time.perf_counter() - t0
        res["feature_bytes"] = features.estimated_size()
        res["n_features"] = features.width
        t0 = time.perf_counter()
        scored = score(model, features)
        res["score_s"] = time.perf_counter() - t0
        ranked = top_k(scored)
    t0 = time.perf_counter()
    final = fill_popular(ranked, baselines.popular_articles(tables, week), tables.n_customers)
    res["top_k_fill_s"] = time.perf_counter() - t0
    res["final_rows"] = final.height
    res["total_s"] = time.perf_counter() - began
    res["peak_rss_gib"] = _rss_gib()
    out.put(res)


def run_partition(tables_dir: Path, model_path: Path, week_key: str, chunk_customers: int) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_partition, args=(str(tables_dir), str(model_path), week_key, chunk_customers, queue))
    proc.start()
    res = queue.get()
    proc.join()
    if proc.exitcode:
        raise RuntimeError(f"partition process failed with exit code {proc.exitcode}")
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True, type=Path, help="data folder holding tables/ (or the tables folder)")
    ap.add_argument("--train-weeks", type=int, default=2)
    ap.add_argument("--chunk-customers", type=int, default=10_000, help="customers per chunk in the chunked run")
    args = ap.parse_args(argv)

    from hm_recsys.ranking import save_model, train_ranker, training_set
    from hm_recsys.ranking.pipeline import labelled_week
    from hm_recsys.tables import load_tables
    from hm_recsys.weeks import TargetWeek, week_start

    tables_dir = args.data_dir / "tables" if (args.data_dir / "tables").is_dir() else args.data_dir
    tables = load_tables(tables_dir)
    production = TargetWeek(week_start(tables.transactions["t_dat"].max())).shift(1)
    print(f"demo world: {tables.n_customers:,} customers, {tables.n_articles:,} articles, "
          f"{tables.transactions.height:,} transactions; production week {production.key}")
    t0 = time.perf_counter()
    frames = [labelled_week(tables, production.shift(-b)) for b in range(1, args.train_weeks + 1)]
    model = train_ranker(training_set(frames), task_type="CPU")
    print(f"model: trained on {args.train_weeks} weeks of buyers in {time.perf_counter() - t0:.0f}s, "
          f"{model.tree_count_} trees")
    del frames
    with tempfile.TemporaryDirectory() as tmp:
        model_path = save_model(model, Path(tmp) / "ranker.cbm")
        whole = run_partition(tables_dir, model_path, production.key, 0)
        chunked = run_partition(tables_dir, model_path, production.key, args.chunk_customers)

    pl.Config.set_tbl_rows(40)
    rows = whole["candidates"]
    throughput = rows / whole["score_s"]
    print("\nProduction partition, every customer, one pass (fresh process):")
    stage = {k: round(v, 2) for k, v in whole.items() if k.endswith("_s")}
    print(pl.DataFrame({"stage": list(stage), "seconds": list(stage.values())}))
    print(f"candidates {rows:,} ({rows / tables.n_customers:.1f} per customer), {whole['n_features']} columns, "
          f"feature frame {whole['feature_bytes'] / 2**30:.2f} GiB, peak RSS {whole['peak_rss_gib']:.2f} GiB")
    print(f"ranker inference: {throughput:,.0f} candidates scored per second "
          f"({model.tree_count_} trees, CatBoost CPU, all cores)")
    print(f"chunked ({args.chunk_customers:,} customers per chunk): total {chunked['total_s']:.1f}s, "
          f"features+score {chunked['features_and_score_s']:.1f}s, peak RSS {chunked['peak_rss_gib']:.2f} GiB")

    scale_c = FULL["customers"] / tables.n_customers
    scale_t = FULL["transactions"] / tables.transactions.height
    full_rows = rows * scale_c
    sources_s = sum(v for k, v in whole.items() if k.startswith("source_") and k.endswith("_s"))
    print("\nFull-scale estimate (1.37M customers, 105k articles, 31.8M transactions), assuming candidates per "
          "customer as measured here, sources and features linear in rows/transactions:")
    est = {
        "candidates": f"{full_rows / 1e6:.0f}M",
        "sources": f"{sources_s * max(scale_c, scale_t) / 60:.0f} min",
        "features": f"{whole['features_s'] * full_rows / rows / 60:.0f} min",
        "scoring": f"{full_rows / throughput / 60:.0f} min",
        "feature frame in one pass": f"{whole['feature_bytes'] * full_rows / rows / 2**30:.0f} GiB "
                                     f"(so: rank_in_chunks)",
        "union frame": f"{whole['union_bytes'] * full_rows / rows / 2**30:.0f} GiB",
        "chunked run here": f"{chunked['peak_rss_gib'] - whole['rss_after_load_gib']:.2f} GiB over the loaded tables "
                            f"(union + one {args.chunk_customers:,}-customer chunk)",
    }
    for k, v in est.items():
        print(f"  {k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
