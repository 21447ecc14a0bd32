"""The CPU side of the recommender funnel at the real data's size, stage by stage, each in a fresh process.

Stages mirror the Dagster assets' bodies (hm_recsys/defs/assets/*.py) on a data root laid out as the assets
lay it out (``DataPaths``): ingest -> per week (production week P, training weeks P-1, P-2) each candidate
source of ``candidates.SOURCES`` -> a two-tower STAND-IN (exact top-100 of random 32-d embeddings by
``brute_force.top_k``: training is skipped, the top-k cost is real) -> ``write_union_buckets`` -> P's
``write_feature_buckets`` / the training weeks' ``training_rows`` -> ``training_set`` + ``train_ranker``
(DEFAULT_PARAMS) -> ``recommend_from_buckets`` + ``write_submission`` -> ``tune_ranker`` (2 trials).
No images: item vectors are the zero 2048-d vectors the image_embeddings asset writes without images.

Every stage runs in a fresh spawned interpreter, as the multiprocess executor runs a step, and loads what it
needs from disk. Reported per stage: wall s; CPU s (user+sys of the child, from RUSAGE_CHILDREN deltas);
peak RSS (the child's own VmHWM, read by itself at its end); rows out; disk written (the child's
/proc/self/io write_bytes). A watchdog kills a stage whose RSS passes its limit (16 GiB; 14 GiB for the
full-candidates validation rows) and records the RSS it reached. Each stage's record is appended to
DATA/bench/full_scale.jsonl, so ``--resume`` skips the stages already done; the Markdown table is printed
(flushed) after every stage and written to ``--table-out``.

    PYTHONPATH=. /work/main/.venv/bin/python benchmarks/full_scale_stages.py --data-dir /work/fullworld \
        --table-out benchmarks/results/full_scale_stages.txt
    # resume after an interruption: same command + --resume; one stage: --only 'union@2020-09-23'
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import multiprocessing as mp
import os
import resource
import signal
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GIB = 2**30
MB = 1e6
IMAGE_DIMS = 2048  # EMBEDDING_DIM of the ResNet50 image vectors
STANDIN_DIMS = 32
STANDIN_K = 100
NEGATIVES = 20  # RankerTuningConfig.negatives_per_group default
BUCKET_CUSTOMERS = 25_000  # BucketConfig.bucket_customers default
TWO_TOWER = "two_tower"


# ---------------------------------------------------------------- child side: one function per stage


def _paths(a):
    from hm_recsys.paths import DataPaths

    return DataPaths(Path(a["root"]))


def _tables(a):
    from hm_recsys.tables import load_tables

    t0 = time.perf_counter()
    tables = load_tables(_paths(a).tables)
    return tables, time.perf_counter() - t0


def _item_vectors(n_articles: int):
    import numpy as np

    return np.zeros((n_articles, IMAGE_DIMS), dtype=np.float32)


def _size(*paths) -> int:
    total = 0
    for p in map(Path, paths):
        if p.is_file():
            total += p.stat().st_size
        elif p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return total


def stage_ingest(a):
    from hm_recsys import ingest

    p = _paths(a)
    summary = ingest.ingest(p.raw, p.tables)
    return {"rows": summary["transactions"]["rows"], "out_bytes": _size(p.tables),
            "detail": {k: v["rows"] for k, v in summary.items()}}


def stage_source(a):
    """The ``<name>_candidates`` asset: fn(tables, week), write, metadata (recall), contract check."""

    from hm_recsys import io
    from hm_recsys.candidates import SOURCES
    from hm_recsys.defs import checks
    from hm_recsys.defs.assets.ranking import _source_metadata
    from hm_recsys.weeks import TargetWeek

    tables, load_s = _tables(a)
    week = TargetWeek.from_key(a["week"])
    t0 = time.perf_counter()
    frame = SOURCES[a["source"]](tables, week)
    fn_s = time.perf_counter() - t0
    was_sorted = bool(frame["customer_idx"].is_sorted())
    if not was_sorted:  # the union scans each source by customer range: sorted files let it skip row groups
        frame = frame.sort("customer_idx", "rank")
    path = io.write_parquet(frame, p := _paths(a).week_dir("candidates", week.key) / f"{a['source']}.parquet")
    t1 = time.perf_counter()
    meta = _source_metadata(frame, tables, week)
    check = checks.check_contract(frame, a["source"], tables)
    meta_s = time.perf_counter() - t1
    per = frame.group_by("customer_idx").len()
    return {"rows": frame.height, "out_bytes": _size(path),
            "detail": {"load_s": round(load_s, 1), "source_s": round(fn_s, 1), "meta_check_s": round(meta_s, 1),
                       "customers": per.height, "per_customer": round(float(per["len"].mean() or 0), 1),
                       "recall": meta.get("recall"), "was_sorted": was_sorted, "contract_ok": check.passed,
                       "path": str(p)}}


def stage_two_tower_standin(a):
    """STAND-IN for retrieval_candidates: exact top-100 of random 32-d user/item vectors (no training)."""
    import numpy as np
    import polars as pl

    from hm_recsys import io
    from hm_recsys.retrieval.brute_force import top_k

    p = _paths(a)
    n_customers = pl.scan_parquet(p.tables / "customers.parquet").select(pl.len()).collect().item()
    n_articles = pl.scan_parquet(p.tables / "articles.parquet").select(pl.len()).collect().item()
    rng = np.random.default_rng(int(a["week"].replace("-", "")))
    users = rng.standard_normal((n_customers, STANDIN_DIMS), dtype=np.float32)
    items = rng.standard_normal((n_articles, STANDIN_DIMS), dtype=np.float32)
    t0 = time.perf_counter()
    cands = top_k(users, items, STANDIN_K, device="cpu")
    topk_s = time.perf_counter() - t0
    path = io.write_parquet(cands, p.week_dir("candidates", a["week"]) / f"{TWO_TOWER}.parquet")
    return {"rows": cands.height, "out_bytes": _size(path),
            "detail": {"top_k_s": round(topk_s, 1), "customers": n_customers, "articles": n_articles}}


def stage_union(a):
    """The ``candidates`` asset: write_union_buckets over every source + two_tower, then its bucket check."""
    from hm_recsys.candidates import SOURCES
    from hm_recsys.candidates.union import write_union_buckets
    from hm_recsys.defs import checks
    from hm_recsys.weeks import TargetWeek, labels

    tables, load_s = _tables(a)
    week = TargetWeek.from_key(a["week"])
    p = _paths(a)
    paths = {n: p.week_dir("candidates", week.key) / f"{n}.parquet" for n in [*SOURCES, TWO_TOWER]}
    truth = labels(tables.transactions, week)
    out = p.week_dir("candidates", week.key) / "union"
    t0 = time.perf_counter()
    info = write_union_buckets(paths, out, tables.n_customers, BUCKET_CUSTOMERS, purchases=truth if truth.height else None)
    union_s = time.perf_counter() - t0
    check = checks.check_union_buckets(out, tables)
    check_s = time.perf_counter() - t0 - union_s
    u = info["per_source"]["union"]
    return {"rows": info["rows"], "out_bytes": _size(out),
            "detail": {"load_s": round(load_s, 1), "union_s": round(union_s, 1), "check_s": round(check_s, 1),
                       "buckets": info["buckets"], "per_customer": round(u["mean_per_customer"], 1),
                       "recall": u.get("recall"), "check_ok": check.passed,
                       "per_source_recall": {n: s.get("recall") for n, s in info["per_source"].items()}}}


def stage_features(a):
    """The ``ranker_features`` asset: write_feature_buckets with zero 2048-d item vectors (no images)."""
    from hm_recsys.ranking.bucketed import write_feature_buckets
    from hm_recsys.weeks import TargetWeek

    tables, load_s = _tables(a)
    p = _paths(a)
    week = TargetWeek.from_key(a["week"])
    out = p.week_dir("features", week.key) / "ranker_features"
    info = write_feature_buckets(tables, week, p.week_dir("candidates", week.key) / "union", out,
                                 item_vectors=_item_vectors(tables.n_articles))
    return {"rows": info["rows"], "out_bytes": _size(out),
            "detail": {"load_s": round(load_s, 1), "buckets": info["buckets"], "n_features": info["n_features"]}}


def _rows_path(root, week_key, full: bool) -> Path:
    from hm_recsys.paths import DataPaths

    name = "training_rows_full.parquet" if full else f"training_rows_neg{NEGATIVES}.parquet"
    return DataPaths(Path(root)).week_dir("features", week_key) / name


def stage_training_rows(a):
    """One training week of ``_training_frames``: buyers' rows, features as of the week, labels."""
    from hm_recsys import io
    from hm_recsys.ranking.bucketed import training_rows
    from hm_recsys.weeks import TargetWeek

    tables, load_s = _tables(a)
    p = _paths(a)
    week = TargetWeek.from_key(a["week"])
    full = a["full"]
    frame = training_rows(tables, week, p.week_dir("candidates", week.key) / "union", _item_vectors(tables.n_articles),
                          seed=0, negatives_per_buyer=None if full else NEGATIVES, drop_buyers_without_positive=not full)
    path = io.write_parquet(frame, _rows_path(a["root"], week.key, full))
    return {"rows": frame.height, "out_bytes": _size(path),
            "detail": {"load_s": round(load_s, 1), "columns": frame.width, "in_memory_gib": round(frame.estimated_size() / GIB, 2),
                       "buyers": frame["customer_idx"].n_unique(), "positives": int(frame["label"].sum())}}


def stage_ranker(a):
    """The ``ranker_model`` asset with DEFAULT_PARAMS: training_set over the training weeks + train_ranker."""
    import polars as pl

    from hm_recsys.ranking.labels import training_set
    from hm_recsys.ranking.ranker import DEFAULT_OBJECTIVE, DEFAULT_PARAMS, save_model, train_ranker

    p = _paths(a)
    frames = [pl.read_parquet(_rows_path(a["root"], k, False)) for k in a["train_weeks"]]
    t0 = time.perf_counter()
    train = training_set(frames, negatives_per_group=NEGATIVES)
    del frames
    t1 = time.perf_counter()
    model = train_ranker(train, DEFAULT_PARAMS, objective=DEFAULT_OBJECTIVE, task_type="CPU")
    fit_s = time.perf_counter() - t1
    path = save_model(model, p.week_dir("models", a["week"]) / "ranker.cbm")
    return {"rows": train.height, "out_bytes": _size(path),
            "detail": {"training_set_s": round(t1 - t0, 1), "fit_s": round(fit_s, 1), "params": DEFAULT_PARAMS,
                       "features": len(model.feature_names_), "groups": int(train["group_id"].max()) + 1}}


def stage_final(a):
    """The ``final`` asset: recommend_from_buckets + write_submission (popular fill)."""
    from hm_recsys import submission
    from hm_recsys.baselines import popular_articles
    from hm_recsys.ranking.bucketed import recommend_from_buckets
    from hm_recsys.ranking.ranker import load_model
    from hm_recsys.weeks import TargetWeek

    tables, load_s = _tables(a)
    p = _paths(a)
    week = TargetWeek.from_key(a["week"])
    model = load_model(p.week_dir("models", week.key) / "ranker.cbm")
    t0 = time.perf_counter()
    recs = recommend_from_buckets(model, p.week_dir("features", week.key) / "ranker_features",
                                  popular_articles(tables, week), tables.n_customers)
    score_s = time.perf_counter() - t0
    path = p.submission(week.key, "final")
    filled = submission.write_submission(recs, popular_articles(tables, week), tables, path)
    return {"rows": filled.height, "out_bytes": _size(path),
            "detail": {"load_s": round(load_s, 1), "score_top12_s": round(score_s, 1),
                       "write_s": round(time.perf_counter() - t0 - score_s, 1), "customers": filled["customer_idx"].n_unique()}}


def stage_tune(a):
    """The ``ranker_hparams`` asset: tune_ranker on the training weeks, validating on the newest (all its candidates)."""
    import polars as pl

    from hm_recsys.ranking.tuning import tune_ranker
    from hm_recsys.weeks import TargetWeek, labels

    keys = a["train_weeks"]
    full = _rows_path(a["root"], keys[-1], True)
    note = "validated on all candidates of the newest week's buyers"
    if not full.exists():  # the full-candidates stage was stopped: validate on the sampled rows instead
        full, note = _rows_path(a["root"], keys[-1], False), "FULL ROWS MISSING: validated on the newest week's neg-20 rows"
    frames = [pl.read_parquet(_rows_path(a["root"], k, False)) for k in keys[:-1]] + [pl.read_parquet(full)]
    tx = pl.read_parquet(_paths(a).tables / "transactions.parquet", columns=["t_dat", "customer_idx", "article_idx"])
    truth = labels(tx, TargetWeek.from_key(keys[-1]))
    del tx
    result = tune_ranker(frames, n_trials=a["n_trials"], seed=0, task_type="CPU", negatives_per_group=NEGATIVES,
                         valid_purchases=truth)
    return {"rows": sum(f.height for f in frames), "out_bytes": 0,
            "detail": {"note": note, "best_map12": result.best_map, "best_params": result.best_params,
                       "trials": result.trials.to_dicts()}}


# ---------------------------------------------------------------- process plumbing


def _status(pid: int | str, field: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024 / GIB
    except (FileNotFoundError, ProcessLookupError):
        pass
    return float("nan")


def _io_write_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def _child(fn_name: str, args: dict, queue) -> None:
    try:
        out = globals()[fn_name](args)
        out["ok"] = True
    except BaseException as e:  # noqa: BLE001  (report, then exit)
        out = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}
    out["peak_rss_gib"] = _status("self", "VmHWM")
    out["write_bytes"] = _io_write_bytes()
    queue.put(out)


def run_stage(fn_name: str, args: dict, rss_limit_gib: float) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = ctx.Process(target=_child, args=(fn_name, args, queue))
    proc.start()
    seen, killed, result = 0.0, False, None
    while proc.is_alive():
        rss = _status(proc.pid, "VmRSS")
        if rss == rss:
            seen = max(seen, rss)
        if seen > rss_limit_gib and not killed:
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
        try:
            result = queue.get(timeout=0.5)
            break
        except Exception:  # queue.Empty
            pass
    proc.join()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result is None:
        try:
            result = queue.get(timeout=1)
        except Exception:
            result = {"ok": False, "error": f"child died (exit code {proc.exitcode})"
                                            + (f": KILLED at RSS {seen:.1f} GiB > limit {rss_limit_gib} GiB" if killed else "")}
    result.setdefault("peak_rss_gib", seen)
    result.update(
        wall_s=round(wall, 1),
        cpu_s=round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
        killed=killed,
        max_rss_seen_gib=round(seen, 2),
        load_avg_1min=[round(load_before, 1), round(os.getloadavg()[0], 1)],
    )
    return result


# ---------------------------------------------------------------- plan, table, main


def plan(root: Path, n_trials: int, rss_limit: float, full_rows_limit: float) -> list[dict]:
    from hm_recsys.candidates import SOURCES
    from hm_recsys.defs.partitions import data_date_range, week_keys
    from hm_recsys.paths import DataPaths
    from hm_recsys.weeks import TargetWeek

    _, production = week_keys(*data_date_range(DataPaths(root).raw))
    P = TargetWeek.from_key(production)
    train_weeks = [P.shift(-2).key, P.shift(-1).key]  # oldest first, as _training_frames sorts them
    base = {"root": str(root)}
    stages = [dict(name="ingest", week="-", fn="stage_ingest", args=base)]
    for week in [P.key, P.shift(-1).key, P.shift(-2).key]:
        wa = base | {"week": week}
        stages += [dict(name=f"source {s}", week=week, fn="stage_source", args=wa | {"source": s}) for s in SOURCES]
        stages += [dict(name="two_tower STAND-IN (random 32-d, exact top-100 = top-k cost)", week=week,
                        fn="stage_two_tower_standin", args=wa),
                   dict(name="union", week=week, fn="stage_union", args=wa)]
        if week == P.key:
            stages.append(dict(name="ranker_features", week=week, fn="stage_features", args=wa))
        else:
            stages.append(dict(name=f"training_rows neg{NEGATIVES}", week=week, fn="stage_training_rows", args=wa | {"full": False}))
            if week == train_weeks[-1]:
                stages.append(dict(name="training_rows ALL candidates (tuning validation)", week=week,
                                   fn="stage_training_rows", args=wa | {"full": True}, limit=full_rows_limit))
    ta = base | {"week": P.key, "train_weeks": train_weeks}
    stages += [dict(name="ranker train (DEFAULT_PARAMS)", week=P.key, fn="stage_ranker", args=ta),
               dict(name="final (score + submission)", week=P.key, fn="stage_final", args=ta),
               dict(name=f"tune_ranker ({n_trials} trials)", week=P.key, fn="stage_tune", args=ta | {"n_trials": n_trials})]
    for s in stages:
        s.setdefault("limit", rss_limit)
        s["id"] = f"{s['name'].split(' (')[0]}@{s['week']}"
    return stages


HEADER = "| stage | week | wall s | CPU s | peak RSS GiB | rows out | disk written MB | notes |\n|---|---|---:|---:|---:|---:|---:|---|"


def _row(rec: dict) -> str:
    r = rec["result"]
    d = r.get("detail", {})
    notes = []
    if not r.get("ok"):
        notes.append("FAILED: " + r.get("error", "?")[:160])
    for k in ("load_s", "source_s", "top_k_s", "union_s", "check_s", "fit_s", "training_set_s", "score_top12_s",
              "per_customer", "recall", "n_features", "columns", "in_memory_gib", "buyers", "best_map12", "note"):
        if d.get(k) is not None:
            v = d[k]
            notes.append(f"{k}={v:.4f}" if isinstance(v, float) and k in ("recall", "best_map12") else f"{k}={v}")
    notes.append(f"load {r['load_avg_1min'][0]}->{r['load_avg_1min'][1]}")
    rows = f"{r['rows']:,}" if "rows" in r else "-"
    return (f"| {rec['name']} | {rec['week']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['peak_rss_gib']:.2f} | {rows} | "
            f"{r.get('write_bytes', 0) / MB:,.0f} | {'; '.join(notes)} |")


def table(records: list[dict]) -> str:
    total_wall = sum(r["result"]["wall_s"] for r in records)
    total_cpu = sum(r["result"]["cpu_s"] for r in records)
    return "\n".join([HEADER, *map(_row, records), f"| **total** | | {total_wall:.1f} | {total_cpu:.1f} | | | | |"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True, help="data root with raw/ (tables, candidates, ... go beside it)")
    ap.add_argument("--resume", action="store_true", help="skip stages already recorded ok in DATA/bench/full_scale.jsonl")
    ap.add_argument("--only", default="*", help="glob over stage ids (e.g. 'source*@2020-09-23'); see --list")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--n-trials", type=int, default=2)
    ap.add_argument("--rss-limit-gib", type=float, default=16.0)
    ap.add_argument("--full-rows-limit-gib", type=float, default=14.0)
    ap.add_argument("--table-out", type=Path, default=None, help="also write the table (with the command) here")
    args = ap.parse_args()
    root = args.data_dir.resolve()
    log = root / "bench" / "full_scale.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    stages = plan(root, args.n_trials, args.rss_limit_gib, args.full_rows_limit_gib)
    if args.list:
        print("\n".join(s["id"] for s in stages))
        return
    done = {}
    if args.resume and log.exists():
        for line in log.read_text().splitlines():
            rec = json.loads(line)
            if rec["result"].get("ok"):
                done[rec["id"]] = rec
    command = "PYTHONPATH=. python " + " ".join(sys.argv)
    header = (f"# {command}\n# {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs (shared; load avg in notes), "
              f"data {root}; CPU s = user+sys of the stage's process; peak RSS = its VmHWM; disk = its write_bytes\n")
    records = []
    print(header + HEADER, flush=True)
    for s in stages:
        if not fnmatch.fnmatch(s["id"], args.only):
            continue
        if s["id"] in done:
            records.append(done[s["id"]])
            print(_row(done[s["id"]]) + " (resumed)", flush=True)
            continue
        result = run_stage(s["fn"], s["args"], s["limit"])
        rec = {"id": s["id"], "name": s["name"], "week": s["week"], "result": result}
        with log.open("a") as f:
            f.write(json.dumps(rec, default=str) + "\n")
        records.append(rec)
        print(_row(rec), flush=True)
        if not result.get("ok"):
            print(f"<!-- {s['id']} failed:\n{result.get('traceback', result.get('error'))}\n-->", flush=True)
        if args.table_out:
            args.table_out.parent.mkdir(parents=True, exist_ok=True)
            args.table_out.write_text(header + table(records) + "\n")
    print("\n" + table(records), flush=True)


if __name__ == "__main__":
    main()
