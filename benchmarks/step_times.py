"""Wall time of every step Dagster ran on a data folder, summed per asset: where a demo's minutes went.

    .venv/bin/python benchmarks/step_times.py --data-dir data
    .venv/bin/python benchmarks/step_times.py --data-dir data --until 2026-11-29T00:14:13   # only steps started before

Reads the folder's own instance (``<data>/dagster_home``); prints one row per asset (runs, partitions,
total and mean seconds, share of the total) and the sum, which exceeds the wall time when steps overlap.
"""

from __future__ import annotations

import argparse
import collections
import os
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=Path("data"))
    ap.add_argument("--until", help="UTC time (ISO): count only the steps that started before it (e.g. the demo's end)")
    args = ap.parse_args()
    import datetime as dt

    until = dt.datetime.fromisoformat(args.until).replace(tzinfo=dt.timezone.utc).timestamp() if args.until else None
    os.environ["DAGSTER_HOME"] = str((args.data_dir / "dagster_home").resolve())
    import dagster as dg

    seconds: dict[str, list[float]] = collections.defaultdict(list)
    partitions: dict[str, set] = collections.defaultdict(set)
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        for run in runs:
            for step in instance.get_run_step_stats(run.run_id):
                if until is not None and step.start_time and step.start_time >= until:
                    continue
                if step.start_time and step.end_time and step.status and step.status.value == "SUCCESS":
                    seconds[step.step_key].append(step.end_time - step.start_time)
                    partitions[step.step_key].add(run.tags.get("dagster/partition", "-"))
    total = sum(sum(v) for v in seconds.values())
    print(f"# {args.data_dir}: {len(runs)} runs; step wall seconds summed per asset (steps of a run may overlap)")
    print("| asset | steps | partitions | total s | mean s | share |")
    print("|---|---:|---:|---:|---:|---:|")
    for step, vals in sorted(seconds.items(), key=lambda kv: -sum(kv[1])):
        print(f"| {step} | {len(vals)} | {len(partitions[step])} | {sum(vals):.0f} | {sum(vals) / len(vals):.1f} | "
              f"{sum(vals) / total:.0%} |")
    print(f"| **sum** | {sum(map(len, seconds.values()))} | | {total:.0f} | | |")


if __name__ == "__main__":
    main()
