"""Exact top-100 at full H&M scale: 1,371,980 customers x 105,542 articles, 32-d float32 embeddings.

    PYTHONPATH=. .venv/bin/python benchmarks/topk_full_scale.py                    # the full problem
    PYTHONPATH=. .venv/bin/python benchmarks/topk_full_scale.py --customers 200000 # a fraction, extrapolated
    PYTHONPATH=. .venv/bin/python benchmarks/topk_full_scale.py --check 2000       # also verify vs numpy

Runs the real ``brute_force.top_k`` on random unit vectors (cost does not depend on the values). Prints
wall time, process CPU time, GFLOP/s of the 2*n*m*d multiply-adds it must do, peak RSS, and the load
average, because on a shared machine the wall time depends on what else runs: ``cpu_share`` = CPU seconds
/ (wall seconds x workers) says how much of the cores the run actually got, and ``wall_if_cores_free`` =
CPU seconds / workers is what the run would take with its cores to itself (an estimate, labelled so).
``--check N`` compares the first N customers' answers to a float64 numpy argsort (ties: smaller article).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

N_CUSTOMERS = 1_371_980
N_ARTICLES = 105_542
DIM = 32


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def check(users: np.ndarray, items: np.ndarray, got_articles: np.ndarray, k: int) -> dict:
    """Share of the first customers whose top-k equals a float64 sort's (float32 vs float64 rounding can
    only swap near-equal neighbours, so the share of identical sets and of identical lists are both shown)."""
    same_list = same_set = 0
    for c in range(len(users)):
        s = items.astype(np.float64) @ users[c].astype(np.float64)
        want = np.lexsort((np.arange(len(items)), -s))[:k]
        same_list += int((want == got_articles[c]).all())
        same_set += int(set(want.tolist()) == set(got_articles[c].tolist()))
    return {"checked": len(users), "identical_lists": same_list, "identical_sets": same_set}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=N_CUSTOMERS)
    ap.add_argument("--articles", type=int, default=N_ARTICLES)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--check", type=int, default=0)
    args = ap.parse_args()

    from hm_recsys.retrieval import brute_force, tf_env

    torch = tf_env.torch()
    rng = np.random.default_rng(0)
    items = unit_rows(rng, args.articles)
    users = unit_rows(rng, args.customers)
    load_before = os.getloadavg()[0]
    w0, c0 = time.perf_counter(), time.process_time()
    cands = brute_force.top_k(users, items, k=args.k)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    device = str(tf_env.torch_device())
    workers = 1 if device.startswith("cuda") else torch.get_num_threads()
    flop = 2.0 * args.customers * args.articles * DIM
    scale = N_CUSTOMERS / args.customers * N_ARTICLES / args.articles
    result = {
        "device": device,
        "cpus": os.cpu_count(),
        "workers": workers,
        "customers": args.customers,
        "articles": args.articles,
        "k": args.k,
        "measured": "full problem" if scale == 1 else f"fraction 1/{scale:.2f}, *_full extrapolated linearly",
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "gflop_per_s_wall": round(flop / wall / 1e9, 1),
        "gflop_per_cpu_s": round(flop / cpu / 1e9, 1),
        "cpu_share": round(cpu / (wall * workers), 2),
        "wall_if_cores_free_s": round(cpu / workers, 1),
        "wall_full_s": round(wall * scale, 1),
        "wall_full_if_cores_free_s": round(cpu / workers * scale, 1),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "output_rows": cands.height,
        "load_avg_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    if args.check:
        got = cands["article_idx"].to_numpy()[: args.check * args.k].reshape(args.check, args.k)
        result["check_vs_float64_sort"] = check(users[: args.check], items, got, args.k)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
