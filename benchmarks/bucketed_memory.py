"""Peak RSS and wall time of the one-pass vs the bucketed union -> features -> top-12 path, and a full-scale estimate.

Each stage runs in a fresh (spawned) process, as a Dagster asset would, reading its input from disk; its peak
RSS (``ru_maxrss``) and its RSS once imports and tables are loaded are reported, so ``over base`` is what the
stage itself holds. The one-pass stages are the current assets' steps (``union_candidates``, ``build_features``,
``recommend`` on whole frames); the bucketed ones ``write_union_buckets``, ``write_feature_buckets``,
``recommend_from_buckets`` and ``training_rows``. Both paths' top-12 are checked to be identical.

    PYTHONPATH=. .venv/bin/python benchmarks/bucketed_memory.py --data-dir DATA   # DATA/tables from a world
    PYTHONPATH=. .venv/bin/python benchmarks/bucketed_memory.py --generate /tmp/demo  # generate the demo world first

The model is trained on the target week's own buyers (bucketed ``training_rows``): only its cost matters here.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FULL_CUSTOMERS = 1_371_980
FULL_CANDIDATES_PER_CUSTOMER = 195
FULL_ARTICLES = 105_542
FULL_TRANSACTIONS = 31_788_324
IMAGE_DIMS = 2048  # the ResNet50 embeddings the ranker_features asset passes as item vectors
GIB = 2**30


def _rss_now() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / GIB
    return float("nan")


def _peak() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB


def _load(tables_dir: str, week_key: str):
    import hm_recsys.ranking  # noqa: F401  (imports counted in the base, as in an asset process)
    from hm_recsys.tables import load_tables
    from hm_recsys.weeks import TargetWeek

    return load_tables(tables_dir), TargetWeek.from_key(week_key)


def _union_one_pass(a: dict) -> dict:
    import polars as pl

    import hm_recsys.ranking  # noqa: F401
    from hm_recsys.candidates import union_candidates

    base = _rss_now()
    union = union_candidates({n: pl.read_parquet(p) for n, p in a["sources"].items()})
    union.write_parquet(a["out"])
    return {"rows": union.height, "base": base}


def _union_bucketed(a: dict) -> dict:
    import hm_recsys.ranking  # noqa: F401
    from hm_recsys.candidates import write_union_buckets

    base = _rss_now()
    meta = write_union_buckets(a["sources"], a["out"], a["n_customers"], a["bucket_customers"])
    return {"rows": meta["rows"], "base": base}


def _features_one_pass(a: dict) -> dict:
    import numpy as np
    import polars as pl

    from hm_recsys.ranking import build_features

    tables, week = _load(a["tables"], a["week"])
    items = np.load(a["vectors"])
    base = _rss_now()
    frame = build_features(tables, week, pl.read_parquet(a["union"]), items)
    frame.write_parquet(a["out"])
    return {"rows": frame.height, "base": base, "frame_gib": frame.estimated_size() / GIB, "width": frame.width}


def _features_bucketed(a: dict) -> dict:
    import numpy as np

    from hm_recsys.ranking import write_feature_buckets

    tables, week = _load(a["tables"], a["week"])
    items = np.load(a["vectors"])
    base = _rss_now()
    meta = write_feature_buckets(tables, week, a["union"], a["out"], items)
    return {"rows": meta["rows"], "base": base}


def _final(a: dict) -> dict:
    import polars as pl

    from hm_recsys import baselines
    from hm_recsys.ranking import load_model, recommend, recommend_from_buckets

    tables, week = _load(a["tables"], a["week"])
    model = load_model(a["model"])
    popular = baselines.popular_articles(tables, week)
    base = _rss_now()
    if a["bucketed"]:
        recs = recommend_from_buckets(model, a["features"], popular, tables.n_customers)
    else:
        recs = recommend(model, pl.read_parquet(a["features"]), popular, tables.n_customers)
    recs.write_parquet(a["out"])
    return {"rows": recs.height, "base": base}


def _training(a: dict) -> dict:
    import numpy as np

    from hm_recsys.ranking import training_rows

    tables, week = _load(a["tables"], a["week"])
    items = np.load(a["vectors"])
    base = _rss_now()
    rows = training_rows(tables, week, a["union"], items, negatives_per_buyer=20)
    rows.write_parquet(a["out"])
    return {"rows": rows.height, "base": base}


def _child(fn, args: dict, queue) -> None:
    start = time.perf_counter()
    res = fn(args)
    res["wall_s"] = time.perf_counter() - start
    res["peak"] = _peak()
    queue.put(res)


def run_stage(fn, args: dict) -> dict:
    """Run one stage in a fresh spawned interpreter; return its result with wall time and peak RSS (GiB)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, queue))
    proc.start()
    res = queue.get()
    proc.join()
    if proc.exitcode:
        raise RuntimeError(f"{fn.__name__} failed with exit code {proc.exitcode}")
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, help="data folder holding tables/")
    ap.add_argument("--generate", type=Path, help="generate (if absent) and ingest the demo world into this folder")
    ap.add_argument("--bucket-customers", type=int, nargs="+", default=[2_500, 10_000],
                    help="bucket sizes to measure (two or more give the per-row slope used for the estimate)")
    ap.add_argument("--full-bucket-customers", type=int, default=None,
                    help="bucket size of the full-scale estimate (default: hm_recsys.buckets.DEFAULT_BUCKET_CUSTOMERS)")
    args = ap.parse_args(argv)

    import numpy as np
    import polars as pl

    from hm_recsys.buckets import DEFAULT_BUCKET_CUSTOMERS
    from hm_recsys.candidates import run_sources, write_union_buckets
    from hm_recsys.ranking import save_model, train_ranker, training_rows, training_set
    from hm_recsys.tables import load_tables
    from hm_recsys.weeks import TargetWeek, week_start

    data = args.data_dir or args.generate
    if data is None:
        ap.error("give --data-dir or --generate")
    if args.generate and not (data / "tables").is_dir():
        from hm_recsys.ingest import ingest
        from hm_recsys.synth import generate_world

        generate_world(data, "demo", seed=0, images=False)
        ingest(data / "raw", data / "tables")
    tables_dir = data / "tables"
    tables = load_tables(tables_dir)
    week = TargetWeek(week_start(tables.transactions["t_dat"].max()))
    n = tables.n_customers
    full_bucket = args.full_bucket_customers or DEFAULT_BUCKET_CUSTOMERS
    print(f"world: {n:,} customers, {tables.n_articles:,} articles, {tables.transactions.height:,} transactions; "
          f"week {week.key}")

    rows_out = []
    with tempfile.TemporaryDirectory(prefix="bucketed_memory_") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        sources = {}
        for name, frame in run_sources(tables, week).items():
            sources[name] = tmp / f"src_{name}.parquet"
            frame.write_parquet(sources[name])
        print(f"sources: {time.perf_counter() - t0:.0f}s")
        vectors = tmp / "items.npy"
        np.save(vectors, np.random.default_rng(0).normal(size=(tables.n_articles, IMAGE_DIMS)).astype(np.float32))
        common = {"tables": str(tables_dir), "week": week.key, "vectors": str(vectors)}

        # A model to score with (its quality is irrelevant here).
        write_union_buckets(sources, tmp / "model_union", n, max(args.bucket_customers))
        train = training_set([training_rows(tables, week, tmp / "model_union", np.load(vectors))],
                             negatives_per_group=None)
        model_path = save_model(train_ranker(train, {"iterations": 100}, task_type="CPU"), tmp / "ranker.cbm")
        sizes = {
            "tables_gib": sum(t.estimated_size() for t in (tables.articles, tables.customers, tables.transactions)) / GIB,
            "tables_full_gib": (tables.articles.estimated_size() * FULL_ARTICLES / tables.n_articles
                                + tables.customers.estimated_size() * FULL_CUSTOMERS / n
                                + tables.transactions.estimated_size() * FULL_TRANSACTIONS / tables.transactions.height)
            / GIB,
            "vectors_gib": tables.n_articles * IMAGE_DIMS * 4 / GIB,
            "vectors_full_gib": FULL_ARTICLES * IMAGE_DIMS * 4 / GIB,
        }
        del tables, train

        def record(stage: str, mode: str, bucket: int | None, res: dict) -> None:
            rows_out.append({"stage": stage, "mode": mode, "bucket_customers": bucket, "rows": res["rows"],
                             "wall_s": round(res["wall_s"], 1), "peak_rss_gib": round(res["peak"], 2),
                             "base_gib": round(res["base"], 2), "over_base_gib": round(res["peak"] - res["base"], 2)})
            print(rows_out[-1], flush=True)

        u = run_stage(_union_one_pass, {"sources": sources, "out": str(tmp / "union.parquet")})
        record("union", "one-pass", None, u)
        f = run_stage(_features_one_pass, {**common, "union": str(tmp / "union.parquet"),
                                           "out": str(tmp / "features.parquet")})
        record("features", "one-pass", None, f)
        record("top-12", "one-pass", None, run_stage(_final, {**common, "model": str(model_path), "bucketed": False,
                                                               "features": str(tmp / "features.parquet"),
                                                               "out": str(tmp / "final_one_pass.parquet")}))
        one_pass_final = pl.read_parquet(tmp / "final_one_pass.parquet")
        for bucket in args.bucket_customers:
            ud, fd = tmp / f"union_{bucket}", tmp / f"features_{bucket}"
            record("union", "bucketed", bucket, run_stage(_union_bucketed, {
                "sources": sources, "out": str(ud), "n_customers": n, "bucket_customers": bucket}))
            record("features", "bucketed", bucket, run_stage(_features_bucketed, {**common, "union": str(ud),
                                                                                   "out": str(fd)}))
            out = tmp / f"final_{bucket}.parquet"
            record("top-12", "bucketed", bucket, run_stage(_final, {**common, "model": str(model_path),
                                                                     "bucketed": True, "features": str(fd),
                                                                     "out": str(out)}))
            if not pl.read_parquet(out).equals(one_pass_final):
                raise AssertionError(f"bucketed top-12 (bucket {bucket}) differs from the one-pass top-12")
            record("training rows", "bucketed", bucket, run_stage(_training, {
                **common, "union": str(ud), "out": str(tmp / f"train_{bucket}.parquet")}))

    table = pl.DataFrame(rows_out)
    pl.Config.set_tbl_rows(50)
    pl.Config.set_tbl_width_chars(200)
    print("\nbucketed top-12 identical to one-pass top-12 for every bucket size\n")
    print(table)
    _estimate(table, n, f["rows"] / n, f["frame_gib"], f["width"], full_bucket, sizes)
    return 0


def _estimate(table, n: int, per_customer: float, frame_gib: float, width: int, full_bucket: int, sizes: dict) -> None:
    """Linear extrapolation to 1.37M customers x 195 candidates: stated as an estimate with its assumptions."""
    import numpy as np
    import polars as pl

    full_rows = FULL_CUSTOMERS * FULL_CANDIDATES_PER_CUSTOMER
    demo_rows = n * per_customer
    print(f"\nFull-scale estimate ({FULL_CUSTOMERS:,} customers x {FULL_CANDIDATES_PER_CUSTOMER} candidates = "
          f"{full_rows / 1e6:.0f}M rows; here {demo_rows / 1e6:.2f}M rows, {per_customer:.0f} per customer, "
          f"{width} feature-frame columns). Each stage's peak over its base is fitted as a + b x rows held at once "
          f"(one pass = one bucket of every customer), then evaluated at full scale:")
    print(f"  one-pass feature frame alone: {frame_gib * full_rows / demo_rows:.0f} GiB "
          f"({frame_gib * GIB / demo_rows:.0f} B/row measured)")
    n_buckets = -(-FULL_CUSTOMERS // full_bucket)
    bucket_rows = full_bucket * FULL_CANDIDATES_PER_CUSTOMER
    for stage in ("union", "features", "top-12"):
        part = table.filter(pl.col("stage") == stage)
        x = np.array([n if b is None else min(b, n) for b in part["bucket_customers"].to_list()]) * per_customer
        y = part["over_base_gib"].to_numpy()
        slope, intercept = np.polyfit(x, y, 1) if np.unique(x).size > 1 else (y.mean() / x.mean(), 0.0)
        slope, intercept = max(slope, 0.0), max(intercept, 0.0)
        note = ""
        if stage == "features":
            note = (f"; + a {FULL_ARTICLES * IMAGE_DIMS * 8 / GIB:.1f} GiB float64 PCA projection of the image "
                    f"vectors, once before the buckets")
        if stage == "top-12":
            note = "; + customers x 12 result rows and the popular fill, under 2 GiB at 1.37M customers"
        print(f"  {stage}: {slope * GIB:.0f} B per row held + {intercept:.2f} GiB -> one pass ~"
              f"{intercept + slope * full_rows:.0f} GiB, bucketed ({full_bucket:,} customers = {bucket_rows / 1e6:.1f}M "
              f"rows per bucket, {n_buckets} buckets) ~{intercept + slope * bucket_rows:.1f} GiB over base{note}")
    train = table.filter(pl.col("stage") == "training rows")
    if train.height:
        print(f"  training rows: grow with a week's buyers x (positives + 20 negatives), not with customers; here "
              f"{train['over_base_gib'].max():.2f} GiB over base for {train['rows'][0]:,} rows")
    base = table.filter(pl.col("stage") == "features")["base_gib"].max()
    full_base = base + sizes["tables_full_gib"] - sizes["tables_gib"] + sizes["vectors_full_gib"] - sizes["vectors_gib"]
    print(f"  base at full scale (imports + typed tables + {IMAGE_DIMS}-d image vectors): ~{full_base:.1f} GiB "
          f"(here {base:.2f} GiB; tables {sizes['tables_gib']:.2f} -> {sizes['tables_full_gib']:.2f} GiB scaled by rows)")


if __name__ == "__main__":
    sys.exit(main())
