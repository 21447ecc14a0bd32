"""The whole pipeline at the real data's size: generate the full world, run ``hm-recsys backtest --weeks 1``
then ``hm-recsys predict`` on it (the real CLI: Dagster's automation, executor and every asset), and write the
per-asset, per-week table (wall time, CPU time, peak RSS, disk written, rows), the MAP@12 of every recommender
on the backtested week, and the disk each week holds.

    .venv/bin/python benchmarks/full_scale.py --data-dir /work/fullrun \
        --table-out benchmarks/results/$(date +%F)_full_run.txt > full.log 2>&1 &

Hours on a 2-core machine: run it in the background with its output logged to a file. Running the same
command again after an interruption resumes from what Dagster had materialized (the logs and memory samples
of every start are kept in DATA/bench/ and all go into the table). ``--table-only`` rebuilds the table.
The world is generated into DATA/raw unless its CSVs are there (``--images`` also draws the 105k photos; the
generation's wall time and peak RSS are printed); DATA/config.yaml is written from ``--config`` unless one
exists (by default none is written: the pipeline's defaults). The run's own wall time is
DATA/bench/commands.jsonl (one line per command per start).

How the table is made (three records of the run joined):
- memory: Dagster's multiprocess executor runs each step in its own spawned process, so a process's VmHWM
  (its own peak RSS, kept by the kernel) is the step's peak. While a command runs, ``Sampler`` reads every
  ``--every`` seconds, for each descendant of the command, VmHWM, /proc/PID/io write_bytes and its CPU
  seconds (all only grow, so the last sample before exit is at most one interval short), and the machine's
  lowest MemAvailable, into DATA/bench/rss-*.json (pid -> {cmd, first, last, hwm_gib, write_mb, cpu_s});
- the STEP_START event of every step, which names the process that ran it (with the cluster profile a Celery
  child runs step after step: its RSS series during the step is used, not its VmHWM);
- the folder's Dagster instance: every successful step's start and end, its run's partition (target week),
  and the rows its materialization reported (``rows``, ``examples`` or ``training_rows`` metadata).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

GIB = 2**30


RAW_FILES = ("articles.csv", "customers.csv", "transactions_train.csv")
COMMANDS = (("backtest", "--weeks", "1"), ("predict",))


# Memory, CPU and disk writes of every process of a running command, sampled from /proc.


def _children(pid: int) -> list[int]:
    out = []
    try:  # the process may exit while its threads are listed
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def descendants(root: int) -> list[int]:
    seen, todo = [], [root]
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo += _children(pid)
    return seen


def _status_kib(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _pss_kib(pid: int) -> int:
    """Proportional set size: pages shared with other processes (a forked worker's children) counted once overall."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _write_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of the process so far (its threads included)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS


def _mem_available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024 / GIB
    raise RuntimeError("no MemAvailable in /proc/meminfo")


class Sampler:
    """Peak RSS and disk writes of every descendant of ``root``, merged into ``out`` (JSON) at each sample; also
    each process's RSS over time (kept when it moves by 0.05 GiB: a Celery worker's child runs many steps, so
    its VmHWM is not one step's peak) and the peak of the RSS summed over all of them at once."""

    def __init__(self, root: int, out: Path):
        self.root, self.out = root, out
        # A file shared by several commands (full_scale.py: backtest, then predict) keeps every command's
        # processes and the lowest MemAvailable of all: a fresh low overwrote the backtest's with predict's.
        old = json.loads(out.read_text()) if out.exists() else {}
        self.procs: dict[int, dict] = {int(k): v for k, v in old.get("procs", {}).items()}
        self.low: float | None = old.get("min_mem_available_gib")
        self.peak_sum: list = old.get("peak_sum_rss", [0.0, None])  # [GiB, unix time]
        self.peak_pss: list = old.get("peak_sum_pss", [0.0, None])

    def sample(self) -> None:
        now = time.time()
        total = pss = 0.0
        for pid in descendants(self.root):
            hwm = _status_kib(pid, "VmHWM")
            if hwm is None:
                continue
            rec = self.procs.get(pid)
            if rec is None:
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
                except OSError:
                    continue
                rec = self.procs[pid] = {"cmd": cmd, "first": now, "hwm_gib": 0.0, "write_mb": 0.0}
            rec["last"] = now
            rec["hwm_gib"] = max(rec["hwm_gib"], hwm * 1024 / GIB)
            rss = (_status_kib(pid, "VmRSS") or 0) * 1024 / GIB
            total += rss
            pss += _pss_kib(pid) * 1024 / GIB
            series = rec.setdefault("rss", [])
            if not series or abs(series[-1][1] - rss) >= 0.05:
                series.append([round(now, 1), round(rss, 3)])
            wb = _write_bytes(pid)
            if wb is not None:
                rec["write_mb"] = max(rec["write_mb"], wb / 1e6)
            cpu = _cpu_s(pid)
            if cpu is not None:
                rec["cpu_s"] = max(rec.get("cpu_s", 0.0), cpu)
        if total > self.peak_sum[0]:
            self.peak_sum = [total, now]
        if pss > self.peak_pss[0]:
            self.peak_pss = [pss, now]
        avail = _mem_available_gib()
        self.low = avail if self.low is None else min(self.low, avail)
        tmp = self.out.with_suffix(".tmp")
        tmp.write_text(json.dumps({"root": self.root, "min_mem_available_gib": self.low,
                                   "peak_sum_rss": self.peak_sum, "peak_sum_pss": self.peak_pss,
                                   "procs": self.procs}))
        os.replace(tmp, self.out)

    def run_while_alive(self, every: float = 2.0, until=None) -> None:
        """Sample until ``root`` is gone, or, with ``until`` (a ``threading.Event``), until it is set."""
        while (not until.is_set()) if until else Path(f"/proc/{self.root}").exists():
            try:
                self.sample()
            except OSError as e:  # a race with an exiting process the reads above missed: the next sample goes on
                print(f"sampler: {e}", file=sys.stderr, flush=True)
            time.sleep(every)


# The per-asset, per-week table.

ROW_KEYS = ("rows", "examples", "training_rows")
WEEK = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def step_pids(instance, run_id: str) -> dict[str, int]:
    """The process that ran each step of a run: its STEP_START event's pid (a multiprocess executor's step
    process, a Celery worker's child)."""
    import dagster as dg

    return {e.step_key: e.dagster_event.pid for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
            if e.dagster_event and e.dagster_event.pid}


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


def _load_procs(paths: list[Path]) -> tuple[dict[int, list[dict]], float | None, tuple[float, float]]:
    """Every sampled process by pid (a pid can recur across restarts), the lowest MemAvailable seen and the
    highest RSS and PSS summed over all sampled processes at once."""
    procs: dict[int, list[dict]] = collections.defaultdict(list)
    low, peak_sum, peak_pss = None, 0.0, 0.0
    for path in paths:
        rss = json.loads(path.read_text())
        for pid, rec in rss["procs"].items():
            procs[int(pid)].append(rec)
        m = rss.get("min_mem_available_gib")
        low = m if low is None or m is None else min(low, m)
        peak_sum = max(peak_sum, rss.get("peak_sum_rss", [0.0])[0])
        peak_pss = max(peak_pss, rss.get("peak_sum_pss", [0.0])[0])
    return procs, low, (peak_sum, peak_pss)


def _proc_for(procs: dict[int, list[dict]], pid: int, start: float, end: float) -> dict:
    """The sampled process with this pid that was alive during the step (a few seconds' slack); of two
    samplers that watched it, the one that saw it last."""
    alive = [r for r in procs.get(pid, []) if r["first"] - 10 <= end and r["last"] + 10 >= start]
    rec = max(alive, key=lambda r: (r["last"], "cpu_s" in r), default={})
    if rec and not (rec["first"] >= start - 10 and rec["last"] <= end + 10):
        # A process that ran other steps too (a Celery worker's child): its RSS during this step, not its
        # VmHWM; its CPU and disk figures are the whole process's, so they are left out.
        during = [gib for t, gib in rec.get("rss", []) if start - 3 <= t <= end + 3]
        before = [gib for t, gib in rec.get("rss", []) if t < start - 3][-1:]
        return {"hwm_gib": max(during + before, default=None)}
    return rec


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
                "bought_together_candidates", "age_popular_candidates", "bpr_candidates"),
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


def concurrency_table(rows: list[tuple]) -> list[str]:
    """Wall seconds, from the first step's start to the last step's end, during which n steps ran at once: on 2
    cores, time with fewer than 2 steps running is a core the schedule left idle (whatever the steps' threads)."""
    if not rows:
        return []
    edges = sorted([(r[0], 1) for r in rows] + [(r[0] + r[3], -1) for r in rows])
    spans: dict[int, float] = collections.defaultdict(float)
    running, prev = 0, edges[0][0]
    for t, delta in edges:
        spans[running] += t - prev
        running, prev = running + delta, t
    total = sum(spans.values()) or 1.0
    out = ["| steps running | wall s | share |", "|---:|---:|---:|"]
    out += [f"| {n} | {spans[n]:,.0f} | {spans[n] / total:.0%} |" for n in sorted(spans) if spans[n] >= 1]
    return out


def run_timeline(instance) -> list[str]:
    """Every run in creation order: its stage (its job where untagged), week and status, and when it was queued,
    started and ended (seconds from the first run's creation): which run waited for which."""
    from hm_recsys.defs.jobs import STAGE_TAG

    runs = sorted(instance.get_run_records(), key=lambda r: r.create_timestamp.timestamp())
    if not runs:
        return []
    t0 = runs[0].create_timestamp.timestamp()

    def since(t: float | None) -> str:
        return "-" if t is None else f"{t - t0:,.0f}"

    out = ["| stage | week | status | queued s | started s | ended s | ran s |", "|---|---|---|---:|---:|---:|---:|"]
    for rec in runs:
        run = rec.dagster_run
        ran = "-" if rec.start_time is None or rec.end_time is None else f"{rec.end_time - rec.start_time:,.0f}"
        out.append(f"| {run.tags.get(STAGE_TAG, run.job_name)} | {run.tags.get('dagster/partition', '-')} | "
                   f"{run.status.value} | {since(rec.create_timestamp.timestamp())} | {since(rec.start_time)} | "
                   f"{since(rec.end_time)} | {ran} |")
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


def _kind(cmd: str) -> str:
    """What a sampled process was, from its command line."""
    for needle, kind in (("api grpc", "code servers (sensor ticks, run launches)"),
                         ("dagster-daemon", "dagster-daemon"), ("api execute_run", "run workers"),
                         ("multiprocessing", "run workers and their step processes"), ("celery", "Celery workers"),
                         ("hm-recsys", "the CLI"), ("postgres", "PostgreSQL"), ("redis", "Redis")):
        if needle in cmd:
            return kind
    return "other"


def cpu_by_kind(procs: dict[int, list[dict]]) -> list[str]:
    """CPU seconds of every sampled process, summed by what it was: how much went to orchestration."""
    sums: dict[str, list] = collections.defaultdict(lambda: [0, 0.0])
    for recs in procs.values():
        for rec in recs:
            sums[_kind(rec.get("cmd", ""))][0] += 1
            sums[_kind(rec.get("cmd", ""))][1] += rec.get("cpu_s") or 0.0
    total = sum(c for _, c in sums.values()) or 1.0
    lines = ["| process | count | CPU s | share |", "|---|---:|---:|---:|"]
    lines += [f"| {kind} | {n} | {cpu:,.0f} | {cpu / total:.0%} |"
              for kind, (n, cpu) in sorted(sums.items(), key=lambda kv: -kv[1][1]) if cpu >= 1]
    return lines


def build_table(data_dir: Path, rss_paths: list[Path], instance=None) -> str:
    """``instance``: the run's Dagster instance (default: the embedded one in DATA/dagster_home)."""
    import dagster as dg

    procs, low, peak_sum = _load_procs(rss_paths)
    rows = []
    with contextlib.ExitStack() as stack:
        if instance is None:
            instance = stack.enter_context(dg.DagsterInstance.from_config(str((data_dir / "dagster_home").resolve())))
        for run in instance.get_runs():
            week = run.tags.get("dagster/partition", "-")
            pids = step_pids(instance, run.run_id)
            for step in instance.get_run_step_stats(run.run_id):
                if not (step.start_time and step.end_time and step.status and step.status.value == "SUCCESS"):
                    continue
                proc = _proc_for(procs, pids.get(step.step_key, -1), step.start_time, step.end_time)
                n = None
                records = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=dg.AssetKey(step.step_key),
                                          asset_partitions=None if week == "-" else [week]), limit=1).records
                if records:
                    md = records[0].asset_materialization.metadata
                    n = next((md[k].value for k in ROW_KEYS if k in md), None)
                rows.append((step.start_time, step.step_key, week, step.end_time - step.start_time,
                             proc.get("hwm_gib"), proc.get("write_mb"), n, proc.get("cpu_s")))
        timeline = run_timeline(instance)
    rows.sort()
    low_text = "-" if low is None else f"{low:.1f} GiB"
    out = [f"# {data_dir}: {len(rows)} steps, in start order; peak RSS = the step process's VmHWM "
           f"(sampled every few s); disk = its write_bytes; CPU s = its user + system seconds (2 cores: at most "
           f"2x wall); lowest MemAvailable seen {low_text}; summed over every process at once, highest RSS "
           f"{peak_sum[0]:.2f} GiB (shared pages counted in each process) and highest PSS {peak_sum[1]:.2f} GiB "
           f"(shared pages split between their processes)",
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
        out += ["\nsteps running at once (first start to last end; on 2 cores, fewer than 2 leaves a core idle):",
                *concurrency_table(rows)]
    if timeline:
        out += ["\nruns, in the order they were created (seconds from the first):", *timeline]
    if any(rec.get("cpu_s") for recs in procs.values() for rec in recs):
        out += ["\nCPU of every sampled process by kind (the command's whole tree):", *cpu_by_kind(procs)]
    mp = map_table(data_dir)
    if mp:
        out += ["\nMAP@12 of every recommender on the backtested weeks (reports/WEEK/metrics.json):", *mp]
    out.append("\n| week | disk MB |\n|---|---:|")
    out += [f"| {week} | {mb:,.0f} |" for week, mb in sorted(week_disk_mb(data_dir).items())]
    return "\n".join(out)


# The run.


def generate(data: Path, scale: str, seed: int, images: bool) -> None:
    if all((data / "raw" / f).exists() for f in RAW_FILES):
        print(f"world: {data / 'raw'} has the raw files; not generating", flush=True)
        return
    start = time.perf_counter()
    code = ("from hm_recsys.synth import generate_world; "
            f"generate_world({str(data)!r}, {scale!r}, seed={seed}, images={images})")
    subprocess.run([sys.executable, "-c", code], check=True)
    # The first child this process waits for, so the children's peak is the generator's own.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / GIB
    print(f"world: generated in {time.perf_counter() - start:.0f} s, peak RSS {peak:.2f} GiB", flush=True)


def run_command(data: Path, args: tuple[str, ...], log: Path, rss: Path | None, every: float,
                env: dict | None = None) -> dict:
    """One CLI command, its output appended to ``log``; ``rss``: every descendant's memory sampled into it."""
    cli = Path(sys.executable).parent / "hm-recsys"
    start = time.time()
    with open(log, "a") as out:
        out.write(f"\n=== {time.strftime('%FT%TZ', time.gmtime(start))} hm-recsys {' '.join(args)}\n")
        out.flush()
        proc = subprocess.Popen([str(cli), *args, "--data-dir", str(data)], stdout=out, stderr=subprocess.STDOUT,
                                env=env)
        if rss:  # the sampler stops by itself once the command is gone (reaped by ``wait``)
            thread = threading.Thread(target=Sampler(proc.pid, rss).run_while_alive, args=(every,), daemon=True)
            thread.start()
        rc = proc.wait()
        if rss:
            thread.join()
    record = {"command": " ".join(args), "start": start, "wall_s": round(time.time() - start, 1), "rc": rc}
    print(f"hm-recsys {record['command']}: rc {rc}, {record['wall_s']:.0f} s", flush=True)
    return record


def run_commands(data: Path, stamp: str, every: float, env: dict | None = None, sample: bool = True) -> None:
    bench = data / "bench"
    for command in COMMANDS:
        record = run_command(data, command, bench / f"cli-{stamp}.log", bench / f"rss-{stamp}.json" if sample else None,
                             every, env)
        if env:
            record["note"] = "cluster profile"
        with open(bench / "commands.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if record["rc"] != 0:
            sys.exit(f"hm-recsys {record['command']} failed (rc {record['rc']}); its log: {bench}/cli-{stamp}.log")


@contextlib.contextmanager
def cluster(data: Path, stamp: str, every: float):
    """The cluster profile (hm_recsys_tests/services.py: PostgreSQL, Redis, the daemon, Celery workers `cpu`, two
    tasks at a time, and `gpu`, one), every process a descendant of this one, all sampled together from before the
    services start. Every task gets a fresh pool child, the cpu worker's too: a child that ran a 6 GiB step keeps
    that memory while it waits for the next task (the embedded executor also gives every step its own process).
    Yields the client's env and the instance."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from hm_recsys_tests.services import cluster_services

    done = threading.Event()
    sampler = threading.Thread(target=Sampler(os.getpid(), data / "bench" / f"rss-{stamp}.json").run_while_alive,
                               args=(every, done), daemon=True)
    sampler.start()
    work = data / "bench" / f"cluster-{stamp}"
    t0 = time.perf_counter()
    try:
        with cluster_services(data, work, automation=True, env={"TF_CPP_MIN_LOG_LEVEL": "3"},
                              concurrency={"cpu": 2}, max_tasks_per_child={"cpu": 1, "gpu": 1}) as services:
            print(f"cluster: services up in {time.perf_counter() - t0:.0f} s (logs: {work})", flush=True)
            instance = services.instance(work / "client")
            try:
                yield services.process_env(work / "client"), instance
            finally:
                instance.dispose()
    finally:
        done.set()
        sampler.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--scale", default="full", help="the generated world's scale (tiny: a quick check of this script)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--images", action="store_true", help="generate the world with its 105k photos")
    ap.add_argument("--config", help="DATA/config.yaml's text, if the folder has none (default: no file, the "
                                     "pipeline's defaults, which follow the data's size)")
    ap.add_argument("--profile", choices=("embedded", "cluster"), default="embedded",
                    help="cluster: PostgreSQL, Redis, Celery cpu + gpu workers, the CLI as a client (no resume: "
                         "its PostgreSQL lives as long as this command; DATA must hold only raw/ and config.yaml)")
    ap.add_argument("--table-out", type=Path)
    ap.add_argument("--table-only", action="store_true", help="only rebuild the table from DATA/bench/")
    ap.add_argument("--every", type=float, default=2.0, help="seconds between memory samples")
    args = ap.parse_args()
    data = args.data_dir.resolve()
    bench = data / "bench"
    if args.profile == "cluster":
        if args.table_only:
            sys.exit("--table-only: the cluster profile's instance is gone once its run ends (its table is written then)")
        extra = sorted(p.name for p in data.iterdir() if p.name not in ("raw", "config.yaml")) if data.exists() else []
        if extra:
            sys.exit(f"{data}: the cluster profile starts from raw files only; remove {', '.join(extra)}")
    bench.mkdir(parents=True, exist_ok=True)

    instance = None
    with contextlib.ExitStack() as stack:
        if not args.table_only:
            generate(data, args.scale, args.seed, args.images)
            config = data / "config.yaml"
            if args.config and not config.exists():
                config.write_text(args.config)
            print(f"config ({config}):\n{config.read_text()}" if config.exists() else "config: none (the defaults)",
                  flush=True)
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            env = None
            if args.profile == "cluster":
                env, instance = stack.enter_context(cluster(data, stamp, args.every))
            run_commands(data, stamp, args.every, env, sample=env is None)
        table = summary(data, instance)
    print(table, flush=True)
    if args.table_out:
        tmp = args.table_out.with_suffix(".tmp")
        tmp.write_text(table + "\n")
        tmp.replace(args.table_out)


def summary(data: Path, instance=None) -> str:
    bench = data / "bench"
    commands = [json.loads(line) for line in (bench / "commands.jsonl").read_text().splitlines()] \
        if (bench / "commands.jsonl").exists() else []
    header = [f"# .venv/bin/python benchmarks/full_scale.py --data-dir {data}",
              *(f"# {time.strftime('%FT%TZ', time.gmtime(c['start']))} hm-recsys {c['command']}: rc {c['rc']}, "
                f"{c['wall_s']:.0f} s wall" + (f" ({c['note']})" if c.get("note") else "") for c in commands),
              f"# commands' wall summed: {sum(c['wall_s'] for c in commands):.0f} s"]
    return "\n".join(header) + "\n" + build_table(data, sorted(bench.glob("rss-*.json")), instance)


if __name__ == "__main__":
    main()
