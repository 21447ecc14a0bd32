"""Two-tower report on a data folder: recall@100 against last-week popularity, and the image ablation
for cold start (same TFRecords, same seed, with and without image features).

    .venv/bin/python benchmarks/two_tower_ablation.py --data-dir data --images data/image_embeddings.parquet
    .venv/bin/python benchmarks/two_tower_ablation.py --data-dir data --week 2020-09-16 --epochs 4

``--images``: the image-embeddings Parquet (``image_embeddings.embed_images`` output); when it does not
exist it is computed from ``DATA/raw/images`` and written there (minutes on CPU). The week defaults to
the last full week of the transactions (its purchases are the labels).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hm_recsys.retrieval import tf_env  # noqa: E402

tf_env.tensorflow()

from hm_recsys import io, metrics  # noqa: E402
from hm_recsys.baselines import popular_articles, same_list_for_everyone  # noqa: E402
from hm_recsys.paths import DataPaths  # noqa: E402
from hm_recsys.retrieval import cold_start, image_embeddings, tfrecords, two_tower  # noqa: E402
from hm_recsys.tables import load_tables  # noqa: E402
from hm_recsys.weeks import TargetWeek, labels, week_start  # noqa: E402


def last_full_week(tables) -> TargetWeek:
    """The last Wednesday..Tuesday week fully inside the transactions (the backtest week)."""
    last = tables.transactions["t_dat"].max()
    start = week_start(last)
    return TargetWeek(start if start + dt.timedelta(days=6) == last else start - dt.timedelta(days=7))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--images", type=Path, help="image embeddings Parquet (default DATA/image_embeddings.parquet)")
    ap.add_argument("--week")
    ap.add_argument("--work-dir", type=Path, help="keep TFRecords and models here (default: a temporary folder)")
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--finetune-epochs", type=int)
    ap.add_argument("--batch-size", type=int, help="default: 4096 on a GPU, 1024 on CPU (TwoTowerConfig.for_device)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    paths = DataPaths(args.data_dir.resolve())
    tables = load_tables(paths.tables)
    week = TargetWeek.from_key(args.week) if args.week else last_full_week(tables)
    images_path = args.images or paths.root / "image_embeddings.parquet"
    if images_path.exists():
        images = pl.read_parquet(images_path)
    else:
        print(f"embedding images from {paths.images} -> {images_path}")
        images, info = image_embeddings.embed_images(paths.images, tables.articles)
        io.write_parquet(images, images_path)
        print(f"  {info}")
    weights = images.filter(pl.col("has_image"))["weights"].unique().to_list()

    overrides = {"seed": args.seed}
    for field, value in (("epochs", args.epochs), ("finetune_epochs", args.finetune_epochs), ("batch_size", args.batch_size)):
        if value is not None:
            overrides[field] = value
    cfg = two_tower.TwoTowerConfig.for_device(**overrides)

    tmp = None
    work = args.work_dir
    if work is None:
        tmp = tempfile.TemporaryDirectory()
        work = Path(tmp.name)
    t0 = time.perf_counter()
    manifest = tfrecords.write_tfrecords(tables, week, work / "tfrecords", seed=args.seed)
    print(f"week {week}: {manifest['windows']['train']['n_examples']:,} train / "
          f"{manifest['windows']['finetune']['n_examples']:,} fine-tune examples ({time.perf_counter() - t0:.1f} s); "
          f"image weights {weights}; config {dataclasses.asdict(cfg)}")

    truth = labels(tables.transactions, week)
    pop = same_list_for_everyone(popular_articles(tables, week, days=7, n=args.k), tables.n_customers)
    pop_cold = cold_start.cold_start_recall(pop, tables, week, args.k)
    table = cold_start.ablation(tables, week, work / "tfrecords", images, work / "models", cfg, k=args.k)
    print(f"\nrecall@{args.k} on week {week} ({truth.select('customer_idx', 'article_idx').unique().height:,} buyer-article pairs, "
          f"{table['n_cold_pairs'][0]:,} of them of articles never sold before the cutoff)")
    print(f"{'source':28s} {'recall@' + str(args.k):>11s} {'cold-start share':>17s} {'train s':>8s}")
    print(f"{'last-week top-' + str(args.k) + ' popular':28s} {metrics.recall_at_k(pop, truth, args.k):11.4f} "
          f"{(pop_cold['share'] or 0):17.4f} {'':>8s}")
    for row in table.iter_rows(named=True):
        cold = "n/a" if row["cold_share"] is None else f"{row['cold_share']:.4f}"
        print(f"{'two-tower ' + row['variant']:28s} {row['recall_at_k']:11.4f} {cold:>17s} {row['train_seconds']:8.1f}")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
