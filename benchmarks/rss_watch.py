"""Peak memory and disk writes of every process of a running command, sampled from /proc.

Dagster's multiprocess executor runs each step in its own spawned process, so a process's VmHWM (its own
peak RSS, kept by the kernel) is the step's peak. Every ``--every`` seconds this reads, for each descendant
of ``--pid``, VmHWM, /proc/PID/io write_bytes and its CPU seconds (all only grow, so the last sample before
exit is at most one interval short), and the machine's lowest MemAvailable. The JSON written to ``--out``
after every sample maps pid -> {cmd, first, last, hwm_gib, write_mb, cpu_s}; ``benchmarks/full_run_table.py`` joins it with the run log
(which names each step's pid) into the per-asset table.

    .venv/bin/python benchmarks/rss_watch.py --pid $(pgrep -f run.sh) --out DATA/bench/rss.json &
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

GIB = 2**30


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
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
    """Peak RSS and disk writes of every descendant of ``root``, merged into ``out`` (JSON) at each sample."""

    def __init__(self, root: int, out: Path):
        self.root, self.out = root, out
        # A file shared by several commands (full_scale.py: backtest, then predict) keeps every command's
        # processes and the lowest MemAvailable of all: a fresh low overwrote the backtest's with predict's.
        old = json.loads(out.read_text()) if out.exists() else {}
        self.procs: dict[int, dict] = {int(k): v for k, v in old.get("procs", {}).items()}
        self.low: float | None = old.get("min_mem_available_gib")

    def sample(self) -> None:
        now = time.time()
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
            wb = _write_bytes(pid)
            if wb is not None:
                rec["write_mb"] = max(rec["write_mb"], wb / 1e6)
            cpu = _cpu_s(pid)
            if cpu is not None:
                rec["cpu_s"] = max(rec.get("cpu_s", 0.0), cpu)
        avail = _mem_available_gib()
        self.low = avail if self.low is None else min(self.low, avail)
        tmp = self.out.with_suffix(".tmp")
        tmp.write_text(json.dumps({"root": self.root, "min_mem_available_gib": self.low, "procs": self.procs}))
        os.replace(tmp, self.out)

    def run_while_alive(self, every: float = 2.0) -> None:
        while Path(f"/proc/{self.root}").exists():
            self.sample()
            time.sleep(every)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pid", type=int, required=True, help="the command's root process")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--every", type=float, default=2.0)
    args = ap.parse_args()
    Sampler(args.pid, args.out).run_while_alive(args.every)


if __name__ == "__main__":
    main()
