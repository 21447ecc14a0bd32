"""How many ranking rows each candidate source's depth costs, and how much union recall it buys (issue 19 item 4).

Reads a finished week's per-source candidate files (``DATA/candidates/WEEK/<source>.parquet``, as the pipeline
wrote them) and that week's purchases, and rebuilds the union with some sources cut to fewer ranks (or left out):
union rows over all customers (what ``ranker_features`` and ``final`` process), rows per buyer (what the ranker
trains on) and recall over the week's distinct buyer-article pairs. A customer sample (``--sample``: 1 in N by
``customer_idx``) keeps memory beside a running pipeline; rows are scaled back by N.

Recall bounds MAP@12 but is not it: a depth is chosen on MAP@12 measured with the ranker, this says what each
depth costs and the most it can lose.

    .venv/bin/python benchmarks/candidate_depth.py --data-dir DIR --week 2020-09-02
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import polars as pl

SOURCES = ("repurchase", "same_product", "popular", "age_popular", "bought_together", "als", "bpr", "two_tower")
# arm -> {source: ranks kept (0: source left out)}; sources not named keep every rank they have
ARMS: dict[str, dict[str, int]] = {
    "today": {},
    "two_tower 75": {"two_tower": 75},
    "two_tower 50": {"two_tower": 50},
    "popular 36": {"popular": 36},
    "popular 24": {"popular": 24},
    "popular 12": {"popular": 12},
    "two_tower 75, popular 36": {"two_tower": 75, "popular": 36},
    "two_tower 50, popular 24": {"two_tower": 50, "popular": 24},
    "no popular": {"popular": 0},
    "no bpr": {"bpr": 0},
    "no als": {"als": 0},
}
KEYS = ["customer_idx", "article_idx"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--week", required=True, help="a week whose candidates exist and whose purchases are in the data")
    ap.add_argument("--sample", type=int, default=10, help="keep customers with customer_idx %% N == 0")
    args = ap.parse_args()

    week = dt.date.fromisoformat(args.week)
    folder = args.data_dir / "candidates" / args.week
    kept = pl.col("customer_idx") % args.sample == 0
    frames = {s: pl.scan_parquet(folder / f"{s}.parquet").filter(kept).select(*KEYS, "rank").collect()
              for s in SOURCES if (folder / f"{s}.parquet").exists()}
    labels = (
        pl.scan_parquet(args.data_dir / "tables" / "transactions.parquet")
        .filter((pl.col("t_dat") >= week) & (pl.col("t_dat") < week + dt.timedelta(days=7)) & kept)
        .select(pl.col(KEYS).cast(pl.Int32)).unique().collect()
    )
    n_customers = pl.scan_parquet(args.data_dir / "tables" / "customers.parquet").select(pl.len()).collect().item()
    buyers = labels.select("customer_idx").unique()
    print(f"# {args.data_dir} week {args.week}: {n_customers:,} customers, {labels.height * args.sample:,} buyer-article "
          f"pairs; customers sampled 1 in {args.sample}, rows scaled back")
    print("# ranks per source today:", {s: int(f["rank"].max()) + 1 for s, f in frames.items()})
    print("| arm | union rows | per customer | recall | rows per buyer |")
    print("|---|---:|---:|---:|---:|")
    for name, depth in ARMS.items():
        parts = [f.filter(pl.col("rank") < depth[s]) if s in depth else f for s, f in frames.items() if depth.get(s, 1) > 0]
        union = pl.concat([p.select(KEYS) for p in parts]).unique()
        recall = labels.join(union, on=KEYS, how="semi").height / labels.height
        per_buyer = union.join(buyers, on="customer_idx", how="semi").height / buyers.height
        print(f"| {name} | {union.height * args.sample:,} | {union.height * args.sample / n_customers:.1f} | {recall:.2%} "
              f"| {per_buyer:.1f} |", flush=True)


if __name__ == "__main__":
    main()
