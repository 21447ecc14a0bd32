"""Ablation of issue 19's parts, side by side in one run: BPR, sequence features, real tuning, the small-data blend.

For each world (a data folder with tables/, or a scale + seed generated on the fly) it builds every needed week's
candidates and features once, for the buyers of the week (MAP@12 counts buyers only and each customer is ranked on
its own, so this equals scoring everyone), then runs each arm: the pipeline's ranking tail (tuning on the training
weeks, the newest held out; CatBoost on all of them; top-12 with popular fill) for the last ``--weeks`` weeks.

Arms: ``all_on``; one arm per part with that part off; ``all_off`` (the funnel before issue 19: no BPR source, no
``seq_`` features, 6 trials of random search from the default parameters, nothing pruned or warm-started, no blend).
The tuning arm includes warm start from the week before (opt-in in the pipeline: ``ranker_hparams: {warm_start}``).
``--train-seeds`` repeats all_on and all_off with other training seeds (tuning, negatives, CatBoost): the spread a
claimed gain must exceed. Not in the arms: the two-tower source and image vectors (both need the towers / ResNet50:
the same for every arm, left out for time), so absolute figures sit below the pipeline's.

    .venv/bin/python benchmarks/ablation.py --world demo:0 --world demo:1 --train-seeds 0 1 2

Equivalences it relies on (tested): the ``sequence`` switch off drops only the ``seq_`` columns
(test_features_sequence.py); features of a row depend only on its customer, article and history, so the union
without BPR is built as its own union (not by filtering).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ranker_eval import heuristic_maps, last_full_week, peak_rss_gib  # noqa: E402

from hm_recsys import baselines, metrics, weeks  # noqa: E402
from hm_recsys.candidates import run_sources, union_candidates  # noqa: E402
from hm_recsys.ranking import attach_labels, build_features, score, train_ranker  # noqa: E402
from hm_recsys.ranking.blend import BLEND_WEIGHTS, POPULAR_DEPTH, blend_top_k  # noqa: E402
from hm_recsys.ranking.labels import DEFAULT_NEGATIVES, training_set  # noqa: E402
from hm_recsys.ranking.ranker import DEFAULT_PARAMS  # noqa: E402
from hm_recsys.ranking.tuning import tune_ranker  # noqa: E402
from hm_recsys.submission import fill_popular  # noqa: E402
from hm_recsys.tables import Tables, load_tables  # noqa: E402
from hm_recsys.weeks import TargetWeek  # noqa: E402

TRAIN_WEEKS = 2  # the pipeline's default (HM_RANKER_TRAIN_WEEKS)
N_TRIALS = 6  # ranker_hparams' default
OBJECTIVE = "YetiRank:permutations=1"
PARTS = ("bpr", "sequence", "tuning", "blend")


def load_world(spec: str, workdir: Path) -> tuple[str, Tables]:
    """``scale:seed`` (generated into ``workdir``, without images) or a data folder holding tables/."""
    if ":" in spec and not Path(spec).exists():
        from hm_recsys.ingest import ingest
        from hm_recsys.synth.world import generate_world

        scale, seed = spec.split(":")
        out = workdir / f"{scale}_{seed}"
        t0 = time.perf_counter()
        generate_world(out, scale=scale, seed=int(seed), images=False)
        ingest(out / "raw", out / "tables")
        print(f"world {spec}: generated and ingested in {time.perf_counter() - t0:.0f}s", flush=True)
        return spec, load_tables(out / "tables")
    folder = Path(spec)
    return str(folder), load_tables(folder / "tables" if (folder / "tables").is_dir() else folder)


def build_weeks(tables: Tables, needed: list[TargetWeek]) -> tuple[dict, list[dict]]:
    """(week key, bpr on?) -> labelled buyer frame with every feature, and per-source recall rows."""
    frames, recall = {}, []
    for week in needed:
        t0 = time.perf_counter()
        truth = weeks.labels(tables.transactions, week)
        buyers = truth["customer_idx"].unique()
        sources = run_sources(tables, week, buyers)
        for name, f in sources.items():
            recall.append({"week": week.key, "source": name, "per_buyer": f.height / buyers.len(),
                           "recall": metrics.recall(f, truth)})
        for bpr in (True, False):
            union = union_candidates({n: f for n, f in sources.items() if bpr or n != "bpr"})
            recall.append({"week": week.key, "source": "union" if bpr else "union_without_bpr",
                           "per_buyer": union.height / buyers.len(), "recall": metrics.recall(union, truth)})
            frames[week.key, bpr] = attach_labels(build_features(tables, week, union), tables, week)
        print(f"  built {week.key}: {buyers.len():,} buyers, {frames[week.key, True].height:,} rows "
              f"({time.perf_counter() - t0:.0f}s, peak RSS {peak_rss_gib():.2f} GiB)", flush=True)
    return frames, recall


def _without_sequence(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(pl.exclude("^seq_.*$"))


def run_arm(tables: Tables, frames: dict, eval_weeks: list[TargetWeek], on: dict[str, bool], seed: int,
            train_weeks: int = TRAIN_WEEKS) -> list[dict]:
    """MAP@12 of ``final`` per eval week for one arm; tuning runs week by week (warm start reads the week before)."""
    prepare = (lambda f: f) if on["sequence"] else _without_sequence
    first = eval_weeks[0].shift(-1)
    tuned_weeks = [first, *eval_weeks] if on["tuning"] else eval_weeks
    previous, rows = None, []
    for week in tuned_weeks:
        train = [prepare(frames[week.shift(-b).key, on["bpr"]]) for b in range(1, train_weeks + 1)]
        options = dict(warm_start=previous, prune=True) if on["tuning"] else dict(n_startup_trials=N_TRIALS, prune=False)
        held_out = week.shift(-1)
        t0 = time.perf_counter()
        tuned = tune_ranker(train, n_trials=N_TRIALS, seed=seed, objective=OBJECTIVE, task_type="CPU",
                            valid_purchases=weeks.labels(tables.transactions, held_out),
                            blend_weights=BLEND_WEIGHTS if on["blend"] else None,
                            valid_popular=baselines.popular_articles(tables, held_out, n=POPULAR_DEPTH), **options)
        previous = tuned.best_params
        if week not in eval_weeks:
            continue
        model = train_ranker(training_set(train, negatives_per_group=DEFAULT_NEGATIVES, seed=seed),
                             {**DEFAULT_PARAMS, **tuned.best_params}, OBJECTIVE, seed, "CPU")
        scored = score(model, prepare(frames[week.key, on["bpr"]]))
        weight = tuned.blend_weight
        popular = baselines.popular_articles(tables, week)
        ranked = blend_top_k(scored, weight, baselines.popular_articles(tables, week, n=POPULAR_DEPTH))
        final = fill_popular(ranked, popular, tables.n_customers)
        rows.append({"week": week.key, "final": metrics.map_at_k(final, weeks.labels(tables.transactions, week)),
                     "seconds": time.perf_counter() - t0, "pruned": tuned.pruned, "blend": weight})
    return rows


def arms(parts: tuple[str, ...]) -> dict[str, dict[str, bool]]:
    out = {"all_on": dict.fromkeys(parts, True)}
    out.update({f"{p}_off": {q: q != p for q in parts} for p in parts})
    out["all_off"] = dict.fromkeys(parts, False)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", action="append", required=True, help="scale:seed (e.g. demo:0) or a data folder")
    ap.add_argument("--weeks", type=int, default=3, help="score the last N full weeks (default 3)")
    ap.add_argument("--train-seeds", type=int, nargs="+", default=[0],
                    help="training seeds; the first runs every arm, the others all_on and all_off")
    ap.add_argument("--train-weeks", type=int, default=TRAIN_WEEKS,
                    help=f"weeks the ranker learns from (default {TRAIN_WEEKS}, the pipeline's HM_RANKER_TRAIN_WEEKS)")
    ap.add_argument("--arms", nargs="+", help="run only these arms (default: every arm)")
    args = ap.parse_args(argv)
    parts = PARTS
    chosen = arms(parts) if not args.arms else {a: on for a, on in arms(parts).items() if a in args.arms}
    if args.arms and set(args.arms) - set(chosen):
        ap.error(f"unknown arms {sorted(set(args.arms) - set(chosen))}; known: {', '.join(arms(parts))}")
    print(f"parts: {', '.join(parts)}; arms: {', '.join(chosen)}; training seeds {args.train_seeds}; "
          f"{args.train_weeks} training weeks", flush=True)

    results, recall_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.world:
            name, tables = load_world(spec, Path(tmp))
            newest = last_full_week(tables)
            eval_weeks = [newest.shift(-i) for i in reversed(range(args.weeks))]
            needed = sorted({w.shift(-b) for w in eval_weeks for b in range(args.train_weeks + 2)}, key=lambda w: w.start)
            print(f"world {name}: {tables.n_customers:,} customers, {tables.transactions.height:,} transactions; "
                  f"eval weeks {[w.key for w in eval_weeks]}", flush=True)
            frames, recall = build_weeks(tables, needed)
            recall_rows += [{"world": name, **r} for r in recall if r["week"] in {w.key for w in eval_weeks}]
            for week in eval_weeks:
                truth = weeks.labels(tables.transactions, week)
                for heuristic, value in heuristic_maps(tables, week, truth).items():
                    results.append({"world": name, "arm": heuristic, "seed": None, "week": week.key, "final": value})
            for i, seed in enumerate(args.train_seeds):
                for arm, on in chosen.items():
                    if i and arm not in ("all_on", "all_off"):
                        continue
                    t0 = time.perf_counter()
                    rows = run_arm(tables, frames, eval_weeks, on, seed, args.train_weeks)
                    results += [{"world": name, "arm": arm, "seed": seed, **r} for r in rows]
                    mean = sum(r["final"] for r in rows) / len(rows)
                    weekly = ", ".join(f"{r['final']:.5f}" for r in rows)
                    print(f"  {arm:<13} seed {seed}: final {len(rows)}-week mean {mean:.5f} ({weekly}; "
                          f"blend {[r['blend'] for r in rows]}, pruned {[r['pruned'] for r in rows]}; "
                          f"{time.perf_counter() - t0:.0f}s)", flush=True)

    pl.Config.set_tbl_rows(80)
    pl.Config.set_tbl_width_chars(200)
    table = pl.DataFrame(results, infer_schema_length=None)
    means = table.group_by("world", "arm", "seed", maintain_order=True).agg(pl.col("final").mean().alias("map12"))
    print("\nMAP@12, mean over the scored weeks (heuristics: seed null):")
    print(means.with_columns(pl.col("map12").round(5)))
    base = means.filter(pl.col("arm") == "all_off").select("world", "seed", pl.col("map12").alias("all_off"))
    gains = (means.filter(pl.col("arm").is_in(list(chosen)))
             .join(base, on=["world", "seed"]).with_columns(gain_pct=((pl.col("map12") / pl.col("all_off") - 1) * 100).round(1)))
    print("\nagainst all_off (the funnel before issue 19), same world and training seed:")
    print(gains.select("world", "arm", "seed", pl.col("map12").round(5), "gain_pct"))
    spread = (means.filter(pl.col("arm").is_in(["all_on", "all_off"])).group_by("world", "arm", maintain_order=True)
              .agg(pl.len().alias("seeds"), pl.col("map12").min().round(5).alias("min"),
                   pl.col("map12").max().round(5).alias("max"), pl.col("map12").mean().round(5).alias("mean")))
    print("\nspread across training seeds:")
    print(spread)
    recall = pl.DataFrame(recall_rows).group_by("world", "source", maintain_order=True).agg(
        pl.col("per_buyer").mean().round(1), (pl.col("recall").mean() * 100).round(2).alias("recall_%"))
    print("\nper-source recall of the scored weeks' purchases (buyers only):")
    print(recall)
    print(f"\npeak RSS {peak_rss_gib():.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
