"""Weekly towers: from scratch every week vs warm-started from last week's towers, on consecutive weeks.

    PYTHONPATH=. .venv/bin/python benchmarks/weekly_warm_start.py --data-dir data --weeks 3
    PYTHONPATH=. .venv/bin/python benchmarks/weekly_warm_start.py --data-dir data --replay 1 4 --no-images

Both arms read the same weekly TFRecord shards (``write_weekly_window``: consecutive target weeks share
51 of 52 shards, so each later week writes one). Week 1 trains from scratch in both arms; from week 2
the warm arm loads the previous week's trained (not fine-tuned) towers and trains only on the newest
``--replay`` weeks, then both arms fine-tune on the last 4 weeks as usual. Prints recall@k over the
week's buyers and the seconds spent training, per week and arm. ``--no-images`` (no ResNet run needed)
compares the arms on the other features only.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hm_recsys.retrieval import tf_env  # noqa: E402

tf_env.tensorflow()

import polars as pl  # noqa: E402

from hm_recsys import metrics  # noqa: E402
from hm_recsys.paths import DataPaths  # noqa: E402
from hm_recsys.retrieval import brute_force, tfrecords, two_tower  # noqa: E402
from hm_recsys.tables import load_tables  # noqa: E402
from hm_recsys.weeks import TargetWeek, labels, week_start  # noqa: E402


def last_full_week(tables) -> TargetWeek:
    last = tables.transactions["t_dat"].max()
    start = week_start(last)
    return TargetWeek(start if start + dt.timedelta(days=6) == last else start - dt.timedelta(days=7))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--images", type=Path, help="image embeddings Parquet (default DATA/embeddings/image_embeddings.parquet)")
    ap.add_argument("--no-images", action="store_true")
    ap.add_argument("--weeks", type=int, default=3)
    ap.add_argument("--replay", type=int, nargs="+", default=[1], help="warm arm(s): newest weeks trained on")
    ap.add_argument("--incremental-epochs", type=int, default=2)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--work-dir", type=Path)
    args = ap.parse_args()

    tables = load_tables(DataPaths(args.data_dir.resolve()).tables)
    images = None
    if not args.no_images:
        images = pl.read_parquet(args.images or args.data_dir / "embeddings" / "image_embeddings.parquet")
    last = last_full_week(tables)
    weeks = [last.shift(i - args.weeks + 1) for i in range(args.weeks)]
    cfg = two_tower.TwoTowerConfig.for_device(use_images=images is not None, warm_start=True,
                                              incremental_epochs=args.incremental_epochs)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="weekly_warm_start_"))
    print(f"{tables.n_customers:,} customers, {tables.n_articles:,} articles; weeks {[w.key for w in weeks]}; "
          f"batch {cfg.batch_size}, {cfg.epochs} epochs from scratch, {cfg.incremental_epochs} warm, "
          f"{cfg.finetune_epochs} fine-tune; images={images is not None}; work dir {work}")
    rows = []
    previous: dict[str, Path] = {}
    scratch_row: dict[str, dict] = {}  # week -> the scratch arm's row (it runs first each week)
    for week in weeks:
        t0 = time.perf_counter()
        before = len(list((work / "shards").glob("*"))) if (work / "shards").exists() else 0
        tfrecords.write_weekly_window(tables, week, work / "shards", work / "tfr" / week.key)
        shards_written = len(list((work / "shards").glob("*"))) - before
        write_s = time.perf_counter() - t0
        truth = labels(tables.transactions, week)
        arms = {"scratch": None} | {f"warm_replay{r}": r for r in args.replay}
        for arm, replay in arms.items():
            out = work / "models" / arm / week.key
            if replay is not None and arm not in previous:  # first week: the warm arms start from scratch's towers
                previous[arm] = previous["scratch"]
                rows.append(dict(scratch_row[week.key], arm=arm))
                print(json.dumps(rows[-1]), flush=True)
                continue
            t1 = time.perf_counter()
            if replay is None:
                hist = two_tower.train(work / "tfr" / week.key, out / "trained", dataclasses.replace(cfg, warm_start=False), images)
            else:
                hist = two_tower.train(work / "tfr" / week.key, out / "trained", dataclasses.replace(cfg, incremental_weeks=replay),
                                       images, init_from=previous[arm])
            two_tower.finetune(work / "tfr" / week.key, out / "trained", out / "finetuned", image_embeddings=images)
            train_s = time.perf_counter() - t1
            previous[arm] = out / "trained"
            cands, _ = brute_force.retrieve(out / "finetuned", work / "tfr" / week.key, k=args.k, image_embeddings=images)
            rows.append({"week": week.key, "arm": arm, "start": "warm" if "init_from" in hist else "scratch",
                         "train_examples": hist["n_examples"], f"recall@{args.k}": round(metrics.recall_at_k(cands, truth, args.k), 4),
                         "train_plus_finetune_s": round(train_s, 1), "shards_written": shards_written,
                         "tfrecords_s": round(write_s, 1)})
            print(json.dumps(rows[-1]), flush=True)
            if replay is None:
                scratch_row[week.key] = rows[-1]
    with pl.Config(tbl_rows=50, tbl_cols=20, tbl_width_chars=200):
        print(pl.DataFrame(rows))


if __name__ == "__main__":
    main()
