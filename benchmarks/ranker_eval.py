"""Backtest of the ranking stage: per-source recall, union recall, and MAP@12 of the ranker vs the heuristics.

For each of the last ``--weeks`` weeks W: candidates and features for W's buyers as of W's cutoff, a CatBoost
ranker trained on weeks W-1..W-k (each built as of its own cutoff, labelled by its own purchases), top-12 +
last-week popular fill (``final``), scored against W's purchases beside the baselines of ``hm_recsys.baselines``.
Every week's frame is built once and reused by every eval week that trains on it.

    .venv/bin/python benchmarks/ranker_eval.py --data-dir data            # typed tables in data/tables
    .venv/bin/python benchmarks/ranker_eval.py --data-dir data --weeks 1 --train-weeks 2 --tune 5

Only the buyers of each week are scored: MAP@12 counts buyers only and every customer is ranked on its own,
so this equals scoring everyone (the production `final` does) at a fraction of the cost.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from hm_recsys import baselines, metrics, weeks
from hm_recsys.candidates import SOURCES, run_sources, union_candidates
from hm_recsys.paths import DataPaths
from hm_recsys.ranking import attach_labels, build_features, feature_importance, score, top_k, train_ranker
from hm_recsys.ranking.labels import DEFAULT_NEGATIVES, training_set
from hm_recsys.ranking.ranker import DEFAULT_PARAMS
from hm_recsys.ranking.tuning import tune_ranker
from hm_recsys.submission import fill_popular
from hm_recsys.tables import Tables, load_tables
from hm_recsys.weeks import TargetWeek


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def last_full_week(tables: Tables) -> TargetWeek:
    """The newest week whose seven days all lie in the data."""
    last_day = tables.transactions["t_dat"].max()
    week = TargetWeek(weeks.week_start(last_day))
    return week if week.end - last_day <= dt.timedelta(days=1) else week.shift(-1)


def load_extra_sources(data_dir: Path, week: TargetWeek, names: list[str]) -> dict[str, pl.DataFrame]:
    """Candidate frames the pipeline materialised (e.g. the two-tower top-100): DATA/candidates/<week>/<name>.parquet."""
    frames = {}
    for name in names:
        path = DataPaths(data_dir).week_dir("candidates", week.key) / f"{name}.parquet"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no {name} candidates for week {week.key}; materialize that partition first")
        frames[name] = pl.read_parquet(path)
    return frames


def load_item_vectors(path: Path | None, tables: Tables) -> np.ndarray | None:
    """Image embeddings (``retrieval.image_embeddings`` output: article_idx, embedding) as an n_articles x d array."""
    if path is None:
        return None
    frame = pl.read_parquet(path, columns=["article_idx", "embedding"]).sort("article_idx")
    if frame["article_idx"].to_list() != list(range(tables.n_articles)):
        raise ValueError(f"{path}: expected one embedding per article_idx 0..{tables.n_articles - 1}")
    return frame["embedding"].to_numpy()


def build_week(tables: Tables, week: TargetWeek, source_params: dict, extra: dict[str, pl.DataFrame],
               item_vectors: np.ndarray | None = None) -> tuple[pl.DataFrame, list[dict], dict]:
    """The week's labelled frame (buyers only), its per-source recall rows, and stage timings."""
    truth = weeks.labels(tables.transactions, week)
    buyers = truth["customer_idx"].unique()
    timings = {}
    began = time.perf_counter()
    sources = {name: frame.filter(pl.col("customer_idx").is_in(buyers.implode())) for name, frame in extra.items()}
    for name in SOURCES:
        t0 = time.perf_counter()
        sources.update(run_sources(tables, week, buyers, params=source_params, names=[name]))
        timings[f"source_{name}"] = time.perf_counter() - t0
    rows = [
        {"week": week.key, "source": name, "candidates": f.height, "per_buyer": f.height / buyers.len(),
         "recall": metrics.recall(f, truth)}
        for name, f in sources.items()
    ]
    t0 = time.perf_counter()
    union = union_candidates(sources)
    rows.append({"week": week.key, "source": "union", "candidates": union.height,
                 "per_buyer": union.height / buyers.len(), "recall": metrics.recall(union, truth)})
    timings["union"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    frame = attach_labels(build_features(tables, week, union, item_vectors), tables, week)
    timings["features"] = time.perf_counter() - t0
    timings["week_total"] = time.perf_counter() - began
    return frame, rows, timings


def heuristic_maps(tables: Tables, week: TargetWeek, truth: pl.DataFrame) -> dict[str, float]:
    popular = baselines.popular_articles(tables, week)
    return {
        name: metrics.map_at_k(fill_popular(fn(tables, week), popular, tables.n_customers), truth)
        for name, fn in baselines.BASELINES.items()
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True, type=Path, help="data folder holding tables/ (or the tables folder)")
    ap.add_argument("--weeks", type=int, default=3, help="evaluate the last N full weeks (default 3)")
    ap.add_argument("--train-weeks", type=int, default=4, help="training weeks W-1..W-k per eval week (default 4)")
    ap.add_argument("--negatives", type=int, default=DEFAULT_NEGATIVES, help="negatives kept per training group (0 = all)")
    ap.add_argument("--params", type=json.loads, default={}, help="CatBoost params JSON over the defaults")
    ap.add_argument("--objective", default="YetiRank:permutations=1", help="CatBoost loss (the pipeline's default)")
    ap.add_argument("--source-params", type=json.loads, default={}, help='e.g. {"popular": {"top_n": 100}}')
    ap.add_argument("--tune", type=int, default=0, help="Optuna trials per eval week (0 = default params)")
    ap.add_argument("--extra-sources", nargs="*", default=[],
                    help="materialised sources to add, read from DATA/candidates/<week>/<name>.parquet (e.g. two_tower)")
    ap.add_argument("--image-embeddings", type=Path, help="parquet of article_idx, embedding: adds the emb_ features")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    tables_dir = args.data_dir / "tables" if (args.data_dir / "tables").is_dir() else args.data_dir
    t0 = time.perf_counter()
    tables = load_tables(tables_dir)
    print(f"tables: {tables.n_customers:,} customers, {tables.n_articles:,} articles, "
          f"{tables.transactions.height:,} transactions ({time.perf_counter() - t0:.1f}s)")
    item_vectors = load_item_vectors(args.image_embeddings, tables)
    newest = last_full_week(tables)
    eval_weeks = [newest.shift(-i) for i in reversed(range(args.weeks))]
    needed = sorted({w.shift(-b) for w in eval_weeks for b in range(args.train_weeks + 1)}, key=lambda w: w.start)

    frames: dict[str, pl.DataFrame] = {}
    recall_rows: list[dict] = []
    timing_rows: list[dict] = []
    extra_top12: dict[str, dict[str, pl.DataFrame]] = {}
    for week in needed:
        extra = load_extra_sources(args.data_dir, week, args.extra_sources)
        frame, rows, timings = build_week(tables, week, args.source_params, extra, item_vectors)
        extra_top12[week.key] = {n: f.filter(pl.col("rank") < 12) for n, f in extra.items()}
        frames[week.key] = frame
        recall_rows += rows
        timing_rows.append({"week": week.key, "rows": frame.height, **timings})
        print(f"built {week.key}: {frame.height:,} rows, {frame['customer_idx'].n_unique():,} buyers, "
              f"{timings['week_total']:.1f}s (features {timings['features']:.1f}s), peak RSS {peak_rss_gib():.2f} GiB",
              flush=True)

    results = []
    importance = None
    for week in eval_weeks:
        truth = weeks.labels(tables.transactions, week)
        train_frames = [frames[week.shift(-b).key] for b in range(1, args.train_weeks + 1)]
        negatives = args.negatives or None
        params = {**DEFAULT_PARAMS, **args.params}
        tune_s = 0.0
        if args.tune:
            t0 = time.perf_counter()
            newest_train = week.shift(-1)
            tuned = tune_ranker(train_frames, n_trials=args.tune, seed=args.seed, objective=args.objective,
                                negatives_per_group=negatives,
                                valid_purchases=weeks.labels(tables.transactions, newest_train))
            tune_s = time.perf_counter() - t0
            params = {**params, **tuned.best_params}
            print(f"{week.key}: tuned {args.tune} trials in {tune_s:.0f}s -> {tuned.best_params} "
                  f"(valid MAP {tuned.best_map:.4f})")
        t0 = time.perf_counter()
        train = training_set(train_frames, drop_groups_without_positive=args.objective != "Logloss",
                             negatives_per_group=negatives, seed=args.seed)
        model = train_ranker(train, params, args.objective, args.seed, "CPU")
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        scored = score(model, frames[week.key])
        score_s = time.perf_counter() - t0
        ranked = top_k(scored)
        popular = baselines.popular_articles(tables, week)
        final = fill_popular(ranked, popular, tables.n_customers)
        extra_maps = {n: metrics.map_at_k(fill_popular(f, popular, tables.n_customers), truth)
                      for n, f in extra_top12[week.key].items()}
        row = {"week": week.key, "buyers": truth["customer_idx"].n_unique(), **heuristic_maps(tables, week, truth),
               **extra_maps, "final": metrics.map_at_k(final, truth), "train_rows": train.height,
               "train_s": train_s, "tune_s": tune_s, "score_rows_per_s": scored.height / max(score_s, 1e-9)}
        results.append(row)
        importance = feature_importance(model)
        print(f"{week.key}: final MAP@12 {row['final']:.4f} (train {train.height:,} rows in {train_s:.0f}s)", flush=True)

    pl.Config.set_tbl_rows(60)
    pl.Config.set_tbl_cols(20)
    pl.Config.set_tbl_width_chars(200)
    eval_keys = [w.key for w in eval_weeks]
    recall = pl.DataFrame(recall_rows).filter(pl.col("week").is_in(eval_keys))
    print("\nPer-source recall over next-week buyer-article pairs (mean of the eval weeks):")
    print(recall.group_by("source", maintain_order=True).agg(
        pl.col("candidates").mean().round(0).cast(pl.Int64), pl.col("per_buyer").mean().round(1),
        (pl.col("recall").mean() * 100).round(2).alias("recall_%"), (pl.col("recall").min() * 100).round(2).alias("min_%"),
        (pl.col("recall").max() * 100).round(2).alias("max_%")))
    table = pl.DataFrame(results)
    names = [*baselines.BASELINES, *args.extra_sources, "final"]
    print("\nMAP@12 per eval week:")
    print(table.select("week", "buyers", *names))
    mean = table.select(pl.col(names).mean())
    best = max(baselines.BASELINES, key=lambda n: mean[n][0])
    print(f"\nmean over {len(eval_weeks)} weeks: " + ", ".join(f"{n} {mean[n][0]:.4f}" for n in names))
    print(f"final / best heuristic ({best}) = {mean['final'][0] / mean[best][0]:.2f}x")
    print("\nRanker: " + ", ".join(
        f"{r['week']}: {r['train_rows']:,} train rows, train {r['train_s']:.0f}s, tune {r['tune_s']:.0f}s, "
        f"{r['score_rows_per_s']:,.0f} rows/s scored" for r in results))
    print("\nStage seconds per built week (buyers only):")
    print(pl.DataFrame(timing_rows).select("week", "rows", pl.exclude("week", "rows").round(1)))
    print("\nTop features of the last model (PredictionValuesChange):")
    print(importance.head(25))
    print(f"\npeak RSS {peak_rss_gib():.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
