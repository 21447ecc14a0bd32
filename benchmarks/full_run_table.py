"""The per-asset, per-week table of a real pipeline run: wall time, peak RSS, disk written, rows.

Joins three records of one run of the ``hm-recsys`` CLI on a data folder:
- the folder's Dagster instance: every successful step's start and end, its run's partition (target week),
  and the rows its materialization reported (``rows``, ``examples`` or ``training_rows`` metadata);
- the CLI's logs (``--log``), whose STEP_WORKER_STARTED lines name the process id of each step;
- ``benchmarks/rss_watch.py``'s samples (``--rss``, one file per start of the command): each process's VmHWM
  (its own peak RSS) and write_bytes.
Then the disk each week's folders hold, and the MAP@12 table of the backtested weeks. ``benchmarks/full_scale.py``
calls ``build_table`` after its run; by hand:

    .venv/bin/python benchmarks/full_run_table.py --data-dir /work/fullrun --log /work/fullrun/run.log \
        --rss /work/fullrun/bench/rss.json
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
from pathlib import Path

STARTED = re.compile(r" - ([0-9a-f-]{36}) - (\d+) - (\S+) - STEP_WORKER_STARTED")
ROW_KEYS = ("rows", "examples", "training_rows")
WEEK = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def step_pids(logs: list[Path]) -> dict[tuple[str, str], int]:
    out = {}
    for line in (line for log in logs for line in log.read_text(errors="replace").splitlines()):
        m = STARTED.search(line)
        if m:
            out[(m.group(1), m.group(3))] = int(m.group(2))
    return out


def week_disk_mb(root: Path) -> dict[str, float]:
    """Bytes under every ``<kind>/<week>/`` folder of the data root, summed per week."""
    sizes: dict[str, float] = collections.defaultdict(float)
    for kind in root.iterdir():
        if not kind.is_dir() or kind.name in ("dagster_home", "raw"):
            continue
        for sub in kind.iterdir():
            if sub.is_dir() and WEEK.match(sub.name):
                sizes[sub.name] += sum(f.stat().st_size for f in sub.rglob("*") if f.is_file()) / 1e6
    return dict(sizes)


def _load_procs(paths: list[Path]) -> tuple[dict[int, list[dict]], float | None]:
    """Every sampled process by pid (a pid can recur across restarts), and the lowest MemAvailable seen."""
    procs: dict[int, list[dict]] = collections.defaultdict(list)
    low = None
    for path in paths:
        rss = json.loads(path.read_text())
        for pid, rec in rss["procs"].items():
            procs[int(pid)].append(rec)
        m = rss.get("min_mem_available_gib")
        low = m if low is None or m is None else min(low, m)
    return procs, low


def _proc_for(procs: dict[int, list[dict]], pid: int, start: float, end: float) -> dict:
    """The sampled process with this pid that was alive during the step (a few seconds' slack); of two
    samplers that watched it, the one that saw it last."""
    alive = [r for r in procs.get(pid, []) if r["first"] - 10 <= end and r["last"] + 10 >= start]
    return max(alive, key=lambda r: (r["last"], "cpu_s" in r), default={})


def busy_seconds(rows: list[tuple]) -> float:
    """Wall seconds covered by at least one successful step (the union of their intervals)."""
    total, end = 0.0, None
    for start, stop in sorted((r[0], r[0] + r[3]) for r in rows):
        if end is None or start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


STAGES = {
    "tables": ("articles", "customers", "transactions", "image_embeddings", "history"),
    "weekly shards": ("tfrecords",),
    "towers": ("two_tower_model", "two_tower_finetuned"),
    "sources": ("als_candidates", "same_product_candidates", "repurchase_candidates", "popular_candidates",
                "bought_together_candidates", "age_popular_candidates"),
    "retrieval": ("retrieval_candidates",),
    "union": ("candidates",),
    "ranker features": ("ranker_features",),
    "ranking (tuning + model)": ("ranker_hparams", "ranker_model"),
    "final + evaluation": ("final", "evaluation"),
    "baselines": ("popular_all_time", "popular_last_week", "repurchase_popular"),
}


def stage_table(rows: list[tuple]) -> list[str]:
    """Wall and CPU seconds summed per stage of the funnel, largest CPU first (steps of any other asset: "other")."""
    stage_of = {asset: stage for stage, assets in STAGES.items() for asset in assets}
    wall: dict[str, float] = collections.defaultdict(float)
    cpu: dict[str, float] = collections.defaultdict(float)
    for _, key, _, secs, _, _, _, cpu_s in rows:
        stage = stage_of.get(key, "other")
        wall[stage] += secs
        cpu[stage] += cpu_s or 0.0
    out = ["| stage | steps' wall s | steps' CPU s |", "|---|---:|---:|"]
    out += [f"| {s} | {wall[s]:,.0f} | {cpu[s]:,.0f} |" for s in sorted(wall, key=lambda s: -cpu[s])]
    out.append(f"| all | {sum(wall.values()):,.0f} | {sum(cpu.values()):,.0f} |")
    return out


def map_table(root: Path) -> list[str]:
    reports = sorted(root.glob("reports/*/metrics.json"))
    metrics = [m for m in (json.loads(r.read_text()) for r in reports) if m.get("buyers")]  # not the production week
    if not metrics:
        return []
    names = sorted({n for m in metrics for n in m["map12"]}, key=lambda n: -metrics[-1]["map12"].get(n, 0))
    out = ["| recommender | " + " | ".join(m["week"] for m in metrics) + " |", "|---|" + "---:|" * len(metrics)]
    out += [f"| {n} | " + " | ".join(f"{m['map12'][n]:.5f}" if n in m["map12"] else "-" for m in metrics) + " |"
            for n in names]
    out.append("| buyers | " + " | ".join(f"{m['buyers']:,}" for m in metrics) + " |")
    return out


def build_table(data_dir: Path, logs: list[Path], rss_paths: list[Path]) -> str:
    os.environ["DAGSTER_HOME"] = str((data_dir / "dagster_home").resolve())
    import dagster as dg

    pids = step_pids(logs)
    procs, low = _load_procs(rss_paths)
    rows = []
    with dg.DagsterInstance.get() as instance:
        for run in instance.get_runs():
            week = run.tags.get("dagster/partition", "-")
            for step in instance.get_run_step_stats(run.run_id):
                if not (step.start_time and step.end_time and step.status and step.status.value == "SUCCESS"):
                    continue
                proc = _proc_for(procs, pids.get((run.run_id, step.step_key), -1), step.start_time, step.end_time)
                n = None
                records = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=dg.AssetKey(step.step_key),
                                          asset_partitions=None if week == "-" else [week]), limit=1).records
                if records:
                    md = records[0].asset_materialization.metadata
                    n = next((md[k].value for k in ROW_KEYS if k in md), None)
                rows.append((step.start_time, step.step_key, week, step.end_time - step.start_time,
                             proc.get("hwm_gib"), proc.get("write_mb"), n, proc.get("cpu_s")))
    rows.sort()
    low_text = "-" if low is None else f"{low:.1f} GiB"
    out = [f"# {data_dir}: {len(rows)} steps, in start order; peak RSS = the step process's VmHWM "
           f"(sampled every few s); disk = its write_bytes; CPU s = its user + system seconds (2 cores: at most "
           f"2x wall); lowest MemAvailable seen {low_text}",
           "| asset | week | wall s | CPU s | peak RSS GiB | disk written MB | rows |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for _, key, week, secs, hwm, mb, n, cpu in rows:
        out.append(f"| {key} | {week} | {secs:.0f} | {'-' if cpu is None else f'{cpu:.0f}'} | "
                   f"{'-' if hwm is None else f'{hwm:.2f}'} | "
                   f"{'-' if mb is None else f'{mb:,.0f}'} | {'-' if n is None else f'{n:,}'} |")
    if rows:
        first = min(r[0] for r in rows)
        last = max(r[0] + r[3] for r in rows)
        out.append(f"\nsteps: {sum(r[3] for r in rows):.0f} s summed, {busy_seconds(rows):.0f} s of wall with at least one "
                   f"step running (gaps between runs, restarts and killed attempts excluded), {last - first:.0f} s "
                   f"from the first start to the last end; max peak RSS {max((r[4] or 0) for r in rows):.2f} GiB")
        out += ["\nby stage (summed over the steps of every week; steps of concurrent runs overlap):", *stage_table(rows)]
    mp = map_table(data_dir)
    if mp:
        out += ["\nMAP@12 of every recommender on the backtested weeks (reports/WEEK/metrics.json):", *mp]
    out.append("\n| week | disk MB |\n|---|---:|")
    out += [f"| {week} | {mb:,.0f} |" for week, mb in sorted(week_disk_mb(data_dir).items())]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--log", type=Path, nargs="+", required=True, help="the CLI's output (several if it was restarted)")
    ap.add_argument("--rss", type=Path, nargs="+", required=True, help="rss_watch.py's files (one per start)")
    args = ap.parse_args()
    print(build_table(args.data_dir, args.log, args.rss))


if __name__ == "__main__":
    main()
