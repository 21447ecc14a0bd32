"""Full-size ingestion benchmark: wall time, peak RSS and row counts of ``hm_recsys.ingest.ingest``.

    .venv/bin/python benchmarks/ingest_full.py [RAW_DIR] [--tables-dir DIR] [--skip-versions]

RAW_DIR defaults to /work/fullworld/raw. Ingestion runs in a child process so its peak RSS
(RUSAGE_CHILDREN) is its own; the tables go to a temporary folder that is removed afterwards unless
--tables-dir is given. Also times the raw-file data versions and the date-range probe, which the
Dagster layer calls on every observation / definition load. Targets: < 180 s and < 10 GiB on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hm_recsys import schema
from hm_recsys.ingest import ingest, raw_file_version, read_date_range

DEFAULT_RAW = Path("/work/fullworld/raw")


def _child(raw_dir: str, tables_dir: str) -> None:
    start = time.perf_counter()
    summary = ingest(raw_dir, tables_dir)
    print(json.dumps({"wall_s": time.perf_counter() - start, "summary": summary}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("raw_dir", nargs="?", type=Path, default=DEFAULT_RAW)
    parser.add_argument("--tables-dir", type=Path, help="keep the tables here (default: temporary, removed)")
    parser.add_argument("--skip-versions", action="store_true", help="do not time the raw-file hashes")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return

    raw = args.raw_dir
    sizes = {p.name: p.stat().st_size for p in sorted(raw.glob("*.csv"))}
    print(f"raw dir {raw}: " + ", ".join(f"{n} {s / 2**20:,.0f} MiB" for n, s in sizes.items()))

    start = time.perf_counter()
    first, last = read_date_range(raw / schema.TRANSACTIONS_CSV)
    print(f"read_date_range: {first} .. {last} in {(time.perf_counter() - start) * 1e3:.2f} ms")

    if not args.skip_versions:
        for name in sizes:
            start = time.perf_counter()
            version = raw_file_version(raw / name)
            elapsed = time.perf_counter() - start
            print(f"raw_file_version({name}) = {version} in {elapsed:.1f} s "
                  f"({sizes[name] / 2**20 / max(elapsed, 1e-9):,.0f} MiB/s)")

    tables_dir = args.tables_dir or Path(tempfile.mkdtemp(prefix="ingest_bench_"))
    try:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, __file__, "--child", str(raw), str(tables_dir)],
                              check=True, capture_output=True, text=True)
        wall = time.perf_counter() - start
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_gib = usage.ru_maxrss / 2**20  # KiB on Linux
        cpu = usage.ru_utime + usage.ru_stime
        result = json.loads(done.stdout.strip().splitlines()[-1])
        out_sizes = {p.name: p.stat().st_size / 2**20 for p in sorted(tables_dir.glob("*.parquet"))}
    finally:
        if args.tables_dir is None:
            shutil.rmtree(tables_dir, ignore_errors=True)

    print(f"ingest: {result['wall_s']:.1f} s inside the child, {wall:.1f} s with interpreter start; "
          f"{cpu:.1f} CPU s (user+sys; wall depends on what else runs on the cores); peak RSS {peak_gib:.2f} GiB")
    for table, figures in result["summary"].items():
        print(f"  {table}: {figures}")
    print("  parquet MiB: " + ", ".join(f"{n} {s:,.1f}" for n, s in out_sizes.items()))


if __name__ == "__main__":
    main()
