"""The ranker at full scale on a finished run's folder: retrain it with other settings, MAP@12 on the backtest week.

Rebuilds what ``ranker_model`` trains on (the training weeks' buyer rows from their bucketed unions, as the
asset does) and fits CatBoost with the run's tuned parameters and each ``--objective``; then scores the
backtest week's buyers from its ranker-feature buckets and takes top-12 with popular fill, as ``final`` does.
Only buyers count in MAP@12 and every customer is ranked on their own, so scoring the buyers alone gives
the MAP of a full ``final.csv``. ``--check-saved`` also scores the run's own saved model, which must
reproduce the run's MAP (``reports/WEEK/metrics.json``).

    .venv/bin/python benchmarks/ranker_full_scale.py --data-dir /work/fullrun --week 2020-09-16 \\
        --objective YetiRank YetiRank:permutations=1 --check-saved
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import polars as pl  # noqa: E402

from hm_recsys import metrics, weeks  # noqa: E402
from hm_recsys.baselines import popular_articles  # noqa: E402
from hm_recsys.buckets import bucket_files  # noqa: E402
from hm_recsys.ranking.bucketed import training_rows  # noqa: E402
from hm_recsys.ranking.labels import training_set  # noqa: E402
from hm_recsys.ranking.ranker import load_model, score, top_k, train_ranker  # noqa: E402
from hm_recsys.submission import fill_popular  # noqa: E402
from hm_recsys.tables import load_tables  # noqa: E402
from hm_recsys.weeks import TargetWeek  # noqa: E402


def buyers_map(model, features_dir: Path, tables, week: TargetWeek) -> float:
    truth = weeks.labels(tables.transactions, week)
    buyers = truth.select(pl.col("customer_idx").cast(pl.Int32)).unique()
    columns = ["customer_idx", "article_idx", *model.feature_names_]
    parts = []
    for path in bucket_files(features_dir):
        frame = pl.read_parquet(path, columns=columns).join(buyers, on="customer_idx", how="semi")
        if frame.height:
            parts.append(top_k(score(model, frame)))
    recs = fill_popular(pl.concat(parts), popular_articles(tables, week), tables.n_customers)
    return metrics.map_at_k(recs, truth)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--week", required=True, help="the backtest week (its models/WEEK/ranker_hparams.json is read)")
    ap.add_argument("--objective", nargs="+", default=["YetiRank:permutations=1"])
    ap.add_argument("--check-saved", action="store_true", help="also score the run's saved ranker.cbm")
    args = ap.parse_args()
    root = args.data_dir
    tables = load_tables(root / "tables")
    week = TargetWeek.from_key(args.week)
    features = root / "features" / args.week / "ranker_features"
    hp = json.loads((root / "models" / args.week / "ranker_hparams.json").read_text())
    print(f"{args.week}: tuned params {hp['params']}, run's objective {hp['objective']}, training weeks {hp['training_weeks']}",
          flush=True)
    if args.check_saved:
        t = time.perf_counter()
        saved = buyers_map(load_model(root / "models" / args.week / "ranker.cbm"), features, tables, week)
        run_map = json.loads((root / "reports" / args.week / "metrics.json").read_text())["map12"]["final"]
        print(f"saved model: MAP@12 {saved:.5f} (the run's final: {run_map:.5f}); scored in {time.perf_counter() - t:.0f} s",
              flush=True)
    t = time.perf_counter()
    # The item vectors the assets use (``_item_vectors``): the image_embeddings asset's table, in article order.
    vectors = pl.read_parquet(root / "embeddings" / "image_embeddings.parquet").sort("article_idx")["embedding"].to_numpy()
    frames = [training_rows(tables, TargetWeek.from_key(k), root / "candidates" / k / "union", vectors,
                            negatives_per_buyer=hp["negatives_per_group"], seed=hp.get("seed", 0))
              for k in hp["training_weeks"]]
    train = training_set(frames, negatives_per_group=hp["negatives_per_group"])
    print(f"training rows: {train.height:,} in {time.perf_counter() - t:.0f} s", flush=True)
    for objective in args.objective:
        t, c = time.perf_counter(), time.process_time()
        model = train_ranker(train, hp["params"], objective=objective, task_type="CPU")
        fit_s, fit_cpu = time.perf_counter() - t, time.process_time() - c
        t = time.perf_counter()
        value = buyers_map(model, features, tables, week)
        print(f"{objective}: fit {fit_s:.0f} s wall ({fit_cpu:.0f} s CPU), MAP@12 {value:.5f} "
              f"(buyers scored in {time.perf_counter() - t:.0f} s)", flush=True)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
