"""The whole pipeline at the real data's size: generate the full world, run ``hm-recsys backtest --weeks 1``
then ``hm-recsys predict`` on it (the real CLI: Dagster's automation, executor and every asset), and write the
per-asset, per-week table (wall time, peak RSS, disk written, rows), the MAP@12 of every recommender on the
backtested week, and the disk each week holds.

    .venv/bin/python benchmarks/full_scale.py --data-dir /work/fullrun --table-out benchmarks/results/full_run.txt

Hours on a 2-core machine: run it in the background with its output logged to a file. Running the same
command again after an interruption resumes from what Dagster had materialized (the logs and memory samples
of every start are kept in DATA/bench/ and all go into the table). ``--table-only`` rebuilds the table.
The world is generated into DATA/raw unless its CSVs are there (``--images`` also draws the 105k photos);
DATA/config.yaml is written from ``--config`` unless one exists. The run's own wall time is
DATA/bench/commands.jsonl (one line per command per start).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from full_run_table import build_table  # noqa: E402
from rss_watch import Sampler  # noqa: E402

# The id tables learn with sparse Adagrad updates at full scale (0.015 s/step vs Adam's 0.203 s, README).
# One epoch for an anchor (from scratch): 14.3M examples are 14k steps at batch 1024, against ~1k per epoch on
# the demo world that the CPU preset's 3 epochs were tuned on; the 2026-11-28 run's 3 epochs took 1,142 s.
DEFAULT_CONFIG = "two_tower: {optimizer: sparse_adam, epochs: 1}\n"
RAW_FILES = ("articles.csv", "customers.csv", "transactions_train.csv")
COMMANDS = (("backtest", "--weeks", "1"), ("predict",))


def generate(data: Path, scale: str, seed: int, images: bool) -> None:
    if all((data / "raw" / f).exists() for f in RAW_FILES):
        print(f"world: {data / 'raw'} has the raw files; not generating", flush=True)
        return
    start = time.perf_counter()
    code = ("from hm_recsys.synth import generate_world; "
            f"generate_world({str(data)!r}, {scale!r}, seed={seed}, images={images})")
    subprocess.run([sys.executable, "-c", code], check=True)
    print(f"world: generated in {time.perf_counter() - start:.0f} s", flush=True)


def run_command(data: Path, args: tuple[str, ...], log: Path, rss: Path, every: float) -> dict:
    """One CLI command, its output appended to ``log``, every descendant's memory sampled into ``rss``."""
    cli = Path(sys.executable).parent / "hm-recsys"
    start = time.time()
    with open(log, "a") as out:
        out.write(f"\n=== {time.strftime('%FT%TZ', time.gmtime(start))} hm-recsys {' '.join(args)}\n")
        out.flush()
        proc = subprocess.Popen([str(cli), *args, "--data-dir", str(data)], stdout=out, stderr=subprocess.STDOUT)
        # The sampler stops by itself once the command is gone (reaped by ``wait``).
        thread = threading.Thread(target=Sampler(proc.pid, rss).run_while_alive, args=(every,), daemon=True)
        thread.start()
        rc = proc.wait()
        thread.join()
    record = {"command": " ".join(args), "start": start, "wall_s": round(time.time() - start, 1), "rc": rc}
    print(f"hm-recsys {record['command']}: rc {rc}, {record['wall_s']:.0f} s", flush=True)
    return record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--scale", default="full", help="the generated world's scale (tiny: a quick check of this script)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--images", action="store_true", help="generate the world with its 105k photos")
    ap.add_argument("--config", default=DEFAULT_CONFIG, help="DATA/config.yaml's text, if the folder has none")
    ap.add_argument("--table-out", type=Path)
    ap.add_argument("--table-only", action="store_true", help="only rebuild the table from DATA/bench/")
    ap.add_argument("--every", type=float, default=2.0, help="seconds between memory samples")
    args = ap.parse_args()
    data = args.data_dir.resolve()
    bench = data / "bench"
    bench.mkdir(parents=True, exist_ok=True)

    if not args.table_only:
        generate(data, args.scale, args.seed, args.images)
        config = data / "config.yaml"
        if not config.exists():
            config.write_text(args.config)
        print(f"config ({config}):\n{config.read_text()}", flush=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        for command in COMMANDS:
            record = run_command(data, command, bench / f"cli-{stamp}.log", bench / f"rss-{stamp}.json", args.every)
            with open(bench / "commands.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            if record["rc"] != 0:
                sys.exit(f"hm-recsys {record['command']} failed (rc {record['rc']}); its log: {bench}/cli-{stamp}.log")

    commands = [json.loads(line) for line in (bench / "commands.jsonl").read_text().splitlines()] \
        if (bench / "commands.jsonl").exists() else []
    header = [f"# .venv/bin/python benchmarks/full_scale.py --data-dir {data}",
              *(f"# {time.strftime('%FT%TZ', time.gmtime(c['start']))} hm-recsys {c['command']}: rc {c['rc']}, "
                f"{c['wall_s']:.0f} s wall" + (f" ({c['note']})" if c.get("note") else "") for c in commands),
              f"# commands' wall summed: {sum(c['wall_s'] for c in commands):.0f} s"]
    table = "\n".join(header) + "\n" + build_table(data, sorted(bench.glob("cli-*.log")), sorted(bench.glob("rss-*.json")))
    print(table, flush=True)
    if args.table_out:
        tmp = args.table_out.with_suffix(".tmp")
        tmp.write_text(table + "\n")
        tmp.replace(args.table_out)


if __name__ == "__main__":
    main()
