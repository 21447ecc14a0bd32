"""Benchmark: generate the full-scale synthetic world (1.37M customers, 105k articles, ~31.8M rows).

Prints wall time and peak RSS of the generation (run in a child process so its peak is measured on
its own), then profiles the result against the real figures. Target: < 20 min, < 16 GiB on 2 cores.

    .venv/bin/python benchmarks/generate_full.py --out /work/fullworld
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

GIB = 1024**3


def _child(code: str) -> tuple[float, float]:
    """Run ``code`` in a fresh interpreter; return (wall seconds, peak RSS GiB of that child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    wall = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak_kib <= before:
        print("note: peak RSS not above an earlier child's; figure is an upper bound", file=sys.stderr)
    return wall, peak_kib * 1024 / GIB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/work/fullworld", help="world folder (raw/ is written inside)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", action="store_true", help="also draw the 105k images")
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()
    out = Path(args.out).resolve()

    wall, peak = _child(
        "from hm_recsys.synth import generate_world; "
        f"generate_world({str(out)!r}, 'full', seed={args.seed}, images={args.images})"
    )
    rows = sum(1 for _ in open(out / "raw" / "transactions_train.csv", "rb")) - 1
    size = sum(p.stat().st_size for p in (out / "raw").glob("*.csv")) / GIB
    print(f"generate full: {wall / 60:.1f} min wall, peak RSS {peak:.2f} GiB, {rows:,} transaction rows, "
          f"{size:.2f} GiB of CSV in {out / 'raw'}")

    if not args.no_profile:
        start = time.perf_counter()
        from hm_recsys.synth import format_profile, profile_dataset

        stats = profile_dataset(out / "raw")
        print(format_profile(stats))
        print(f"profile full: {time.perf_counter() - start:.0f} s, "
              f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.2f} GiB")


if __name__ == "__main__":
    main()
