"""How the synthetic world's heuristics answer its knobs: generate a world with some `Scale` fields changed, then
print the three heuristics' MAP@12 and the candidate recalls over the backtest's three weeks (targets ending
2020-09-08, -15, -22) and every `hm-recsys profile` figure that leaves its band.

    .venv/bin/python benchmarks/world_calibration.py --scale demo --set repurchase=0.07 --seeds 0 1

No pipeline runs: the figures are `synth.profile`'s (the same heuristics as `hm-recsys profile`, each week's
purchases against the history before it). Worlds go to --workdir (default: a temporary folder, removed).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hm_recsys.synth import profile, scales  # noqa: E402
from hm_recsys.synth.world import generate_world  # noqa: E402

WEEKS_BACK = (14, 7, 0)  # days before the world's last day: the backtest's three target weeks


def knob(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    if name not in {f.name for f in dataclasses.fields(scales.Scale)}:
        raise argparse.ArgumentTypeError(f"{name!r} is not a synth.scales.Scale field")
    return name, float(value)


def weekly(raw: Path) -> dict[str, dict[str, float]]:
    art = pl.read_csv(raw / "articles.csv", columns=["article_id", "product_code"],
                      schema_overrides={"article_id": pl.Int64}).rename({"article_id": "art"})
    tx = pl.read_csv(raw / "transactions_train.csv", columns=["t_dat", "customer_id", "article_id"], try_parse_dates=True,
                     schema_overrides={"article_id": pl.Int64})
    tx = tx.select("t_dat", pl.col("customer_id").hash().alias("cust"), pl.col("article_id").alias("art"))
    end = tx["t_dat"].max()
    out = {}
    for back in WEEKS_BACK:
        last = end - dt.timedelta(days=back)
        out[str(last)] = profile._last_week_recall_and_map(tx.filter(pl.col("t_dat") <= last), art, last)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="demo")
    ap.add_argument("--set", type=knob, action="append", default=[], metavar="FIELD=VALUE")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--workdir", type=Path)
    args = ap.parse_args()
    scale = dataclasses.replace(scales.get_scale(args.scale), **dict(args.set))
    work = args.workdir or Path(tempfile.mkdtemp(prefix="hm-calibration-"))
    print(f"# benchmarks/world_calibration.py --scale {args.scale} "
          + " ".join(f"--set {k}={v}" for k, v in args.set) + f" (seeds {args.seeds})")
    for seed in args.seeds:
        t0 = time.perf_counter()
        raw = generate_world(work / f"seed{seed}", scale, seed=seed, images=False)
        weeks = weekly(raw)
        stats = profile.profile_dataset(raw)
        mean = {k: sum(w[k] for w in weeks.values()) / len(weeks) for k in next(iter(weeks.values()))}
        off = {k: [round(stats[k], 5), list(ref.band)] for k, ref in profile.REFERENCE.items()
               if k in stats and ref.band and not ref.band[0] <= stats[k] <= ref.band[1]}
        print(json.dumps({"seed": seed, "seconds": round(time.perf_counter() - t0),
                          "three_week_mean": {k: round(v, 5) for k, v in mean.items()},
                          "weeks": {w: {k: round(v, 5) for k, v in r.items()} for w, r in weeks.items()},
                          "profile_out_of_band": off}), flush=True)
        shutil.rmtree(work / f"seed{seed}", ignore_errors=True)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
