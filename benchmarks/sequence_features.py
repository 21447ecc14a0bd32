"""Time of ``features_for`` on one bucket-size candidate frame with the ``seq_`` features off and on, and
(``--against REV``) against the ``hm_recsys/ranking/features.py`` of another git revision, output checked identical.

A bucket of the demo world: its first ``--customers`` customers (the default bucket, 25k), each with its 40 most
recent distinct articles and random others up to ``--per-customer`` candidates (~190 per customer as the union
has); random 2048-d item vectors stand in for the image embeddings (only their PCA coordinates are read).
Each setting runs ``--repeats`` times, alternating, and the best time is reported; the frames are checked to
differ only by the ``seq_`` columns.

    PYTHONPATH=. .venv/bin/python benchmarks/sequence_features.py --data-dir DATA   # DATA/tables from a world
    PYTHONPATH=. .venv/bin/python benchmarks/sequence_features.py --data-dir DATA --against 54140ff --repeats 1
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from hm_recsys import weeks  # noqa: E402
from hm_recsys.ranking.features import feature_context, features_for  # noqa: E402
from hm_recsys.tables import load_tables  # noqa: E402


def bucket(tables, week, n_customers: int, per_customer: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    recent = (
        weeks.past(tables, week).filter(pl.col("customer_idx") < n_customers)
        .group_by("customer_idx", "article_idx").agg(pl.col("days_ago").min())
        .sort("customer_idx", "days_ago", "article_idx")
        .filter(pl.int_range(pl.len()).over("customer_idx") < 40)
        .select("customer_idx", "article_idx").collect()
    )
    random = pl.DataFrame({
        "customer_idx": np.repeat(np.arange(n_customers, dtype=np.int32), per_customer),
        "article_idx": rng.integers(0, tables.n_articles, n_customers * per_customer).astype(np.int32),
    })
    frame = pl.concat([recent.cast(pl.Int32), random]).unique(maintain_order=True)
    frame = frame.filter(pl.int_range(pl.len()).over("customer_idx") < per_customer)
    return frame.with_columns(repurchase_score=pl.lit(1.0, dtype=pl.Float32), n_sources=pl.lit(1, dtype=pl.Int8))


def module_at(rev: str):
    """``hm_recsys.ranking.features`` as it was at git revision ``rev`` (imported from a temporary file)."""
    root = Path(__file__).resolve().parents[1]
    text = subprocess.run(["git", "show", f"{rev}:hm_recsys/ranking/features.py"], cwd=root, check=True,
                          capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / f"features_{rev}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--customers", type=int, default=25_000)
    parser.add_argument("--per-customer", type=int, default=190)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--against", help="a git revision whose features.py is timed on the same frame (sequence on)")
    args = parser.parse_args()
    tables = load_tables(args.data_dir / "tables")
    week = weeks.TargetWeek(weeks.week_start(tables.transactions["t_dat"].max()))
    items = np.random.default_rng(0).normal(size=(tables.n_articles, 2048)).astype(np.float32)
    cand = bucket(tables, week, args.customers, args.per_customer)
    print(f"{tables.transactions.height:,} transactions; week {week}; bucket {cand.height:,} rows, "
          f"{cand['customer_idx'].n_unique():,} customers")
    best, frames = {}, {}
    for _ in range(args.repeats):
        for sequence in (False, True):
            ctx = feature_context(tables, week, items, sequence=sequence)
            t0 = time.perf_counter()
            frames[sequence] = features_for(ctx, cand)
            best[sequence] = min(best.get(sequence, float("inf")), time.perf_counter() - t0)
    off, on = frames[False], frames[True]
    assert on.select(off.columns).equals(off), "the seq_ switch changed another column"
    added = [c for c in on.columns if c not in off.columns]
    print(f"features_for, sequence off: {best[False]:.2f} s ({off.width} columns)")
    print(f"features_for, sequence on:  {best[True]:.2f} s ({on.width} columns, +{len(added)}: {', '.join(added)})")
    print(f"added MB: {on.select(added).estimated_size() / 2**20:.0f} of {on.estimated_size() / 2**20:.0f}")
    if args.against:
        old = module_at(args.against)
        old_best = float("inf")
        for _ in range(args.repeats):
            ctx = old.feature_context(tables, week, items)
            t0 = time.perf_counter()
            frame = old.features_for(ctx, cand)
            old_best = min(old_best, time.perf_counter() - t0)
        same = frame.equals(on) and frame.schema == on.schema
        print(f"features_for at {args.against}, sequence on: {old_best:.2f} s; this tree {best[True]:.2f} s "
              f"({best[True] / old_best - 1:+.0%}); identical output: {same}")
        if not same:
            sys.exit(f"the output differs from {args.against}'s")


if __name__ == "__main__":
    main()
