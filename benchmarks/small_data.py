"""Small data (issue 19 item 8): does ``final`` stay at or above the best heuristic on weeks of a few hundred buyers?

For each tiny world (``--worlds``, generator seeds) and training seed (``--seeds``), the pipeline's ranking stage
without Dagster: ``tune_ranker`` on the two training weeks (held-out newest; ``--n-trials`` as the config default),
the tuned parameters trained on both weeks, the target week (the newest labelled) ranked and filled with popular.
``--max-buyers N`` keeps a seeded sample of N buyers per training week (smaller data still; the target week whole).
Printed: the best heuristic's MAP@12, ``final`` with the ranker alone (no guard) and with the blend weight chosen
on the held-out training week (the guard: the one-standard-error rule), the chosen weight ``w``, the held-out MAP@12
of each weight tried, and for comparison the weight with the best held-out MAP@12 (``w_argmax``) and its
``final`` (``final_argmax``).

    .venv/bin/python benchmarks/small_data.py --worlds 0 1 2 3 4 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import polars as pl  # noqa: E402

from hm_recsys import baselines, metrics, weeks  # noqa: E402
from hm_recsys.ranking import score, top_k, train_ranker, training_set, tune_ranker  # noqa: E402
from hm_recsys.ranking.blend import POPULAR_DEPTH, blend_top_k  # noqa: E402
from hm_recsys.ranking.bucketed import sample_customers  # noqa: E402
from hm_recsys.ranking.pipeline import labelled_week  # noqa: E402
from hm_recsys.submission import fill_popular  # noqa: E402
from hm_recsys.weeks import TargetWeek  # noqa: E402


def tiny_world(seed: int, root: Path):
    from hm_recsys.ingest import ingest
    from hm_recsys.paths import DataPaths
    from hm_recsys.synth import generate_world
    from hm_recsys.tables import load_tables

    paths = DataPaths(root / f"world{seed}")
    generate_world(paths.root, scale="tiny", seed=seed)
    ingest(paths.raw, paths.tables)
    return load_tables(paths.tables)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-trials", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-buyers", type=int, default=None, help="buyers kept per training week (default all)")
    args = parser.parse_args()
    rows, began = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for world in args.worlds:
            tables = tiny_world(world, Path(tmp))
            week = TargetWeek(weeks.week_start(tables.transactions["t_dat"].max()))
            truth, held_out = weeks.labels(tables.transactions, week), weeks.labels(tables.transactions, week.shift(-1))
            target, frames = labelled_week(tables, week), [labelled_week(tables, week.shift(-b)) for b in (1, 2)]
            if args.max_buyers:
                frames = [f.filter(pl.col("customer_idx").is_in(sample_customers(
                    f["customer_idx"].to_numpy(), args.max_buyers, world).tolist())) for f in frames]
                held_out = held_out.filter(pl.col("customer_idx").is_in(frames[0]["customer_idx"].unique().implode()))
            popular = baselines.popular_articles(tables, week)
            deep = baselines.popular_articles(tables, week, n=POPULAR_DEPTH)  # the blend's popular tier
            held_out_deep = baselines.popular_articles(tables, week.shift(-1), n=POPULAR_DEPTH)

            def mapk(recs: pl.DataFrame) -> float:
                return metrics.map_at_k(fill_popular(recs, popular, tables.n_customers), truth)  # noqa: B023

            heuristic = max(mapk(fn(tables, week)) for fn in baselines.BASELINES.values())
            for seed in args.seeds:
                tuned = tune_ranker(frames, n_trials=args.n_trials, seed=seed, task_type="CPU",
                                    thread_count=args.threads, valid_purchases=held_out, valid_popular=held_out_deep)
                model = train_ranker(training_set(frames, seed=seed), tuned.best_params, seed=seed, task_type="CPU",
                                     thread_count=args.threads)
                scored = score(model, target)
                maps = tuned.blend_maps
                argmax = max(maps, key=lambda w: (maps[w], -w))  # noqa: B023
                rows.append({"world": world, "seed": seed, "buyers": truth["customer_idx"].n_unique(),
                             "heuristic": heuristic, "final_raw": mapk(top_k(scored)),
                             "final_guard": mapk(blend_top_k(scored, tuned.blend_weight, deep)), "w": tuned.blend_weight,
                             "w_argmax": argmax, "final_argmax": mapk(blend_top_k(scored, argmax, deep)),
                             "held_out": " ".join(f"{m:.4f}" for m in tuned.blend_maps.values())})
                print(f"world {world} seed {seed}: done", flush=True)
    table = pl.DataFrame(rows)
    print(f"\nMAP@12 on the target week; tune_ranker n_trials={args.n_trials}; training buyers per week: "
          f"{args.max_buyers or 'all'}; held_out = MAP@12 of weights "
          f"0 / 0.25 / 0.5 / 0.75 / 1 on the held-out training week; {time.perf_counter() - began:.0f} s\n")
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True,
                   float_precision=4, tbl_width_chars=300, fmt_str_lengths=60):
        print(table)
        for name in ("final_raw", "final_guard", "final_argmax"):
            below = table.filter(pl.col(name) < pl.col("heuristic"))
            ratio = table[name] / table["heuristic"]
            print(f"{name}: below the heuristic in {below.height} of {table.height}; / heuristic: mean "
                  f"{ratio.mean():.3f}, min {ratio.min():.3f}; mean MAP@12 {table[name].mean():.4f}")
        print(f"heuristic mean MAP@12 {table['heuristic'].mean():.4f}")


if __name__ == "__main__":
    main()
