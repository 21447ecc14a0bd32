"""Latency, throughput, memory and switch time of the recommendations API (``hm-recsys serve``).

    .venv/bin/python benchmarks/serving.py [--customers 1371980] [--rates 200 500 1000] [--seconds 10] [--switches 3]

Builds a synthetic snapshot of ``--customers`` customers (64-hex ids, 105,542 articles: the full world's
sizes; ``--customers 50000`` is the demo world's) straight from arrays, no pipeline, publishes it under a
temporary data folder, starts one uvicorn worker (``create_app``, the code ``hm-recsys serve`` runs) in a
subprocess, and drives ``GET /recommendations/<id>`` open-loop on loopback at each rate from threads with
keep-alive connections: each request has a scheduled send time, and its latency is measured from that
time (a late send counts against the server, no coordinated omission). 90 % known ids, 10 % unknown
(fallback). Load generator and server share the machine (2 cores here): both numbers include that.
Prints: the load average (the machine may be shared), publish time (and its phases: ``Published.seconds``),
the server's snapshot load (validation) time and resident memory, p50/p99/max and achieved throughput per
rate (``--rates`` with no rate: none), and ``--switches`` times the switch: from the start of publishing a
new snapshot to /version reporting it, split into publish, the wait for the poller, and the server's load
(``load_phases``: map, check, hash -- check and hash run at the same time); then the median and the worst.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hm_recsys.candidates.popular import AGE_EDGES  # noqa: E402
from hm_recsys.defs.client import free_port  # noqa: E402
from hm_recsys.serving import snapshot as S  # noqa: E402

N_ARTICLES = 105_542


def synthetic(n: int, seed: int, week: str = "2020-09-23") -> tuple[S.SnapshotContent, list[str]]:
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    hexed = np.empty((n, 64), dtype=np.uint8)
    hexed[:, 0::2], hexed[:, 1::2] = digits[raw >> 4], digits[raw & 15]
    ids = hexed.view("S64").ravel()
    order = np.argsort(ids, kind="stable").astype(np.int32)
    rng = np.random.default_rng(seed)
    base = rng.integers(0, N_ARTICLES - 12, n, dtype=np.int32)[:, None]
    recs = (base + np.arange(12, dtype=np.int32)[None, :]).astype(np.int32)  # 12 distinct per row
    labels = [S.OVERALL, *S.age_group_labels(AGE_EDGES)]
    fallback = np.stack([rng.permutation(N_ARTICLES)[:12] for _ in labels]).astype(np.int32)
    arrays = {"customer_ids.npy": ids[order], "customer_rows.npy": order, "recommendations.npy": recs,
              "article_ids.npy": np.array([f"{100000000 + i:010d}" for i in range(N_ARTICLES)]).astype("S"),
              "fallback.npy": fallback}
    info = {"format": S.FORMAT, "week": week, "k": 12, "n_customers": n, "n_articles": N_ARTICLES,
            "age_edges": list(AGE_EDGES), "fallback_groups": labels, "built_from": {"synthetic_seed": seed}}
    sample = [i.decode() for i in ids[rng.integers(0, n, 5000)].tolist()]
    return S.SnapshotContent(week, arrays, info), sample


def get(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    conn.request("GET", path)
    r = conn.getresponse()
    return r.status, r.read()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load(port: int, ids: list[str], rate: float, seconds: float, threads: int = 8) -> dict:
    """Open loop: request i is due at start + i / rate, sent by thread i % threads on its own connection."""
    total = int(rate * seconds)
    lat, errors = [[] for _ in range(threads)], [0] * threads
    start = time.perf_counter() + 0.2

    def worker(t: int) -> None:
        rnd = random.Random(t)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for i in range(t, total, threads):
            due = start + i / rate
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            cid = ids[rnd.randrange(len(ids))] if rnd.random() < 0.9 else f"{rnd.getrandbits(256):064x}"
            try:
                status, _ = get(conn, f"/recommendations/{cid}")
            except OSError:
                status = 0
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            lat[t].append(time.perf_counter() - due)
            errors[t] += status != 200

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for p in pool:
        p.start()
    for p in pool:
        p.join()
    elapsed = time.perf_counter() - start
    ms = np.array([x for part in lat for x in part]) * 1000
    return {"rate": rate, "requests": len(ms), "throughput": len(ms) / elapsed, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()), "errors": sum(errors)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=1_371_980)
    ap.add_argument("--rates", type=float, nargs="*", default=[200, 500, 1000])
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--switches", type=int, default=3, help="new snapshots to publish and time the switch to")
    args = ap.parse_args()
    print("load average %.2f %.2f %.2f (1, 5, 15 min) on %d cores" % (*os.getloadavg(), os.cpu_count()))
    with tempfile.TemporaryDirectory() as tmp:
        root = S.serving_root(tmp)
        t0 = time.perf_counter()
        content, ids = synthetic(args.customers, seed=1)
        t1 = time.perf_counter()
        pub = S.publish(root, content)
        t2 = time.perf_counter()
        size = pub.size_bytes / 2**20
        print(f"customers {args.customers:,}: arrays {t1 - t0:.1f} s, publish {t2 - t1:.2f} s {pub.seconds}, snapshot {size:.0f} MiB")
        port = free_port()
        code = ("import uvicorn, sys; from hm_recsys.serving.app import create_app; "
                f"uvicorn.run(create_app({str(root)!r}), host='127.0.0.1', port={port}, log_level='warning')")
        server = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1])
        try:
            conn = None
            started = time.perf_counter()
            while True:
                try:
                    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                    status, body = get(conn, "/health")
                    if status == 200:
                        break
                except OSError:
                    conn = None
                time.sleep(0.05)
            health = json.loads(body)
            print(f"server ready {time.perf_counter() - started:.1f} s after start; snapshot load (validation) "
                  f"{health['load_seconds']:.2f} s {health.get('load_phases', '')}; RSS {rss_mib(server.pid):.0f} MiB")
            if args.rates:
                print("\n| offered req/s | achieved req/s | p50 ms | p99 ms | max ms | errors |\n|---|---|---|---|---|---|")
            for rate in args.rates:
                r = load(port, ids, rate, args.seconds)
                print(f"| {rate:.0f} | {r['throughput']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.1f} "
                      f"| {r['errors']} |", flush=True)
            print(f"\nRSS after the load: {rss_mib(server.pid):.0f} MiB")
            totals = []
            for seed in range(2, 2 + args.switches):
                content2, _ = synthetic(args.customers, seed=seed)
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)  # the idle one timed out meanwhile
                t3 = time.perf_counter()
                pub2 = S.publish(root, content2)
                t4 = time.perf_counter()
                while (served := json.loads(get(conn, "/version")[1]))["version"] != pub2.version:
                    time.sleep(0.01)
                t5 = time.perf_counter()
                totals.append(t5 - t3)
                loaded = served.get("load_seconds", float("nan"))
                print(f"switch: publish {t4 - t3:.2f} s {pub2.seconds}, then served after {t5 - t4:.2f} s "
                      f"(poll wait + load {loaded:.2f} s {served.get('load_phases', '')}); total {t5 - t3:.2f} s; "
                      f"RSS {rss_mib(server.pid):.0f} MiB", flush=True)
                del content2
            if totals:
                print(f"switch total over {len(totals)}: median {float(np.median(totals)):.2f} s, worst {max(totals):.2f} s; "
                      "load average %.2f %.2f %.2f" % os.getloadavg())
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
