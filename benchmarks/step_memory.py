"""One asset's step on an existing data folder: wall, CPU and peak RSS of the step alone.

Why: the full-scale run takes hours; a change to one step's memory or time is measured on that step, on the
same inputs, before and after (run this script from each tree, e.g. a git worktree of the old commit with
PYTHONPATH pointing at it). The step runs in this process through ``dg.materialize`` with the folder's
resources, on a throwaway instance (the folder's own instance is not touched; its files are rewritten with
the same content). Peak RSS is this process's high-water mark, definitions and imports included.

    PYTHONPATH=. .venv/bin/python benchmarks/step_memory.py --data-dir /work/full --asset retrieval_candidates \
        --week 2020-09-16
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--asset", required=True)
    ap.add_argument("--week", required=True, help="the partition key")
    ap.add_argument("--hash", nargs="*", default=[], help="files under the data folder whose content hash to print")
    args = ap.parse_args()

    os.environ["HM_DATA_DIR"] = str(args.data_dir)
    import dagster as dg

    from hm_recsys.definitions import build_definitions
    from hm_recsys.paths import DataPaths

    defs = build_definitions(DataPaths(args.data_dir))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(sys.modules["hm_recsys"].__file__).parents[1]).stdout.strip()
    before = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    with dg.instance_for_test() as instance:
        result = dg.materialize([*defs.assets], selection=[args.asset], partition_key=args.week, instance=instance,
                                resources=defs.resources)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"code {commit}: {args.asset} [{args.week}] on {args.data_dir}: success {result.success}, "
          f"{wall:.0f} s wall, {cpu:.0f} s CPU, peak RSS {after.ru_maxrss / 2**20:.2f} GiB (before the step "
          f"{before.ru_maxrss / 2**20:.2f} GiB)")
    for rel in args.hash:
        import polars as pl

        frame = pl.read_parquet(args.data_dir / rel)
        digest = hashlib.blake2b(frame.hash_rows().to_numpy().tobytes(), digest_size=8).hexdigest()
        print(f"  {rel}: {frame.height:,} rows, row-hash digest {digest}")


if __name__ == "__main__":
    main()
