"""Weekly shards of a new window written by one thread vs several (``write_weekly_window(writers=...)``).

    .venv/bin/python benchmarks/shard_writers.py --tables /work/fullrun3/tables --weeks 12

Each count writes into a fresh temporary folder under ``--tmp`` (removed after); the time includes the
window's serving features, written once per call. CPU seconds (this process, every thread) say what a week's
shards cost beside other work; wall seconds need a quiet machine.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from hm_recsys.retrieval import tf_env

tf_env.tensorflow()

from hm_recsys.retrieval import tfrecords as tfr  # noqa: E402
from hm_recsys.tables import load_tables  # noqa: E402
from hm_recsys.weeks import TargetWeek  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", type=Path, required=True, help="a data folder's tables/ (after `hm-recsys backtest`)")
    ap.add_argument("--week", default="2020-09-02")
    ap.add_argument("--weeks", type=int, default=12, help="shard weeks in the window")
    ap.add_argument("--writers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()))
    args = ap.parse_args()
    tables = load_tables(args.tables)
    week = TargetWeek.from_key(args.week)
    for writers in args.writers:
        root = Path(tempfile.mkdtemp(dir=args.tmp))
        try:
            start, cpu = time.perf_counter(), time.process_time()
            tfr.write_weekly_window(tables, week, root / "shards", root / "out", train_weeks=args.weeks,
                                    finetune_weeks=min(4, args.weeks), writers=writers)
            print(f"writers {writers}: {args.weeks} weekly shards in {time.perf_counter() - start:.1f} s wall, "
                  f"{time.process_time() - cpu:.1f} CPU s", flush=True)
        finally:
            shutil.rmtree(root)


if __name__ == "__main__":
    main()
