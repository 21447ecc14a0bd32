"""TFRecord ETL speed: examples/s computed + written, examples/s read back through tf.data, bytes per example.

    .venv/bin/python benchmarks/tfrecords.py --data-dir data                # typed tables in data/tables
    .venv/bin/python benchmarks/tfrecords.py --data-dir data --week 2020-09-16 --plain   # uncompressed

The target week defaults to the last full week in the transactions. Also times the column-wise
encoder against building one ``tf.train.Example`` proto per row, on a sample.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hm_recsys.retrieval import tf_env  # noqa: E402

tf, _ = tf_env.tensorflow()

from hm_recsys.retrieval import tfrecords as tfr  # noqa: E402
from hm_recsys.tables import load_tables  # noqa: E402
from hm_recsys.weeks import TargetWeek, week_start  # noqa: E402


def last_full_week(tables) -> TargetWeek:
    last = tables.transactions["t_dat"].max()
    start = week_start(last)
    if start + dt.timedelta(days=6) != last:
        start -= dt.timedelta(days=7)
    return TargetWeek(start)


def per_row_protos(columns: dict, n: int) -> float:
    """Examples/s when each row is built as a tf.train.Example proto (the usual way)."""
    t0 = time.perf_counter()
    lists = {k: v[:n].tolist() for k, v in columns.items()}
    for i in range(n):
        feat = {}
        for k, v in lists.items():
            if isinstance(v[i], list):
                feat[k] = tf.train.Feature(float_list=tf.train.FloatList(value=v[i]))
            else:
                feat[k] = tf.train.Feature(int64_list=tf.train.Int64List(value=[v[i]]))
        tf.train.Example(features=tf.train.Features(feature=feat)).SerializeToString()
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--week", help="target week start (YYYY-MM-DD); default the last full week")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--plain", action="store_true", help="uncompressed shards (default GZIP)")
    ap.add_argument("--batch-size", type=int, default=4096)
    args = ap.parse_args()

    tables = load_tables(args.data_dir / "tables")
    week = TargetWeek.from_key(args.week) if args.week else last_full_week(tables)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "tfr"
        t0 = time.perf_counter()
        manifest = tfr.write_tfrecords(tables, week, out, n_shards=args.shards, compression=None if args.plain else "GZIP")
        total = time.perf_counter() - t0
        timing = json.loads((out / "timing.json").read_text())
        n = sum(w["n_examples"] for w in manifest["windows"].values())
        size = sum(p.stat().st_size for p in out.rglob("*.tfrecord*"))
        print(f"week {week}: {manifest['windows']['train']['n_examples']:,} train + "
              f"{manifest['windows']['finetune']['n_examples']:,} fine-tune examples, {args.shards} shards, "
              f"{'uncompressed' if args.plain else 'GZIP'}")
        print(f"features (polars):       {timing['features_seconds']:8.2f} s")
        print(f"encode + write:          {timing['write_seconds']:8.2f} s  = {timing['examples_per_second_written']:,.0f} examples/s")
        print(f"end to end:              {total:8.2f} s  = {n / total:,.0f} examples/s")
        print(f"size on disk:            {size / 2**20:8.1f} MiB = {size / n:.0f} bytes/example")

        for window in ("train",):
            paths = tfr.window_paths(out, window)
            ds = tfr.read_dataset(paths, manifest["feature_spec"], args.batch_size)
            t0 = time.perf_counter()
            rows = sum(int(b["customer_idx"].shape[0]) for b in ds)
            dt_read = time.perf_counter() - t0
            print(f"read back ({window}, tf.data parse, batch {args.batch_size}): {rows / dt_read:,.0f} examples/s")

        from hm_recsys.retrieval import tower_features as tfeat

        sample = tfeat.examples(tables, week, 30, tfeat.user_features(tables, week)).head(20_000)
        cols = tfr._columns(sample, manifest["feature_spec"])
        t0 = time.perf_counter()
        tfr.encode_examples(cols)
        col_rate = sample.height / (time.perf_counter() - t0)
        proto_rate = per_row_protos(cols, min(5_000, sample.height))
        print(f"encoder alone: column-wise {col_rate:,.0f} examples/s vs one proto per row {proto_rate:,.0f} examples/s")


if __name__ == "__main__":
    main()
