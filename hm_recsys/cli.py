"""``hm-recsys``: generate a world, profile it, backtest weeks through Dagster, predict the next week.

The data folder is ``./data`` unless ``--data-dir`` or ``HM_DATA_DIR`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from hm_recsys.paths import DataPaths, default_data_dir


def _paths(args) -> DataPaths:
    return DataPaths(Path(args.data_dir).resolve() if args.data_dir else default_data_dir())


def cmd_generate(args) -> int:
    from hm_recsys.synth import generate_world

    out = Path(args.out).resolve() if args.out else _paths(args).root
    t0 = time.perf_counter()
    images = None if args.images is None else args.images == "yes"
    generate_world(out, scale=args.scale, seed=args.seed, images=images)
    print(f"generated the {args.scale} world (seed {args.seed}) in {out / 'raw'} in {time.perf_counter() - t0:.1f}s")
    return 0


def cmd_profile(args) -> int:
    from hm_recsys.synth import format_profile, profile_dataset

    root = Path(args.dir).resolve() if args.dir else _paths(args).root
    raw = root / "raw" if (root / "raw").is_dir() else root
    print(format_profile(profile_dataset(raw)))
    return 0


def _backtest_weeks(paths: DataPaths, n: int) -> list[str]:
    """The last ``n`` target weeks that have purchases (the production week has none)."""
    from hm_recsys.defs.partitions import data_date_range, target_weeks_for

    keys = target_weeks_for(*data_date_range(paths.raw)).get_partition_keys()
    return keys[-(n + 1) : -1]


def _ensure_world(paths: DataPaths, scale: str = "demo", seed: int = 0) -> None:
    from hm_recsys.schema import TRANSACTIONS_CSV

    if not (paths.raw / TRANSACTIONS_CSV).exists():
        from hm_recsys.synth import generate_world

        print(f"no raw data in {paths.raw}: generating the {scale} synthetic world (seed {seed})")
        generate_world(paths.root, scale=scale, seed=seed)


def load_asset_config(path: str | None) -> dict[str, dict]:
    """``--config FILE``: YAML or JSON mapping asset name -> config values, e.g. ``ranker_hparams: {n_trials: 5}``."""
    if not path:
        return {}
    import yaml

    from hm_recsys.definitions import ASSET_CONFIGS

    config = yaml.safe_load(Path(path).read_text()) or {}
    unknown = set(config) - set(ASSET_CONFIGS)
    if unknown:
        raise SystemExit(f"{path}: no configurable asset named {sorted(unknown)}; configurable: {sorted(ASSET_CONFIGS)}")
    for name, values in config.items():
        ASSET_CONFIGS[name](**values)  # fails early, naming the bad field
    return config


def run_weeks(paths: DataPaths, week_keys: list[str], force: bool = False, asset_config: dict | None = None) -> None:
    """Materialize target weeks through Dagster, after the ranker's training weeks (features only).

    The ranker of week W learns from the ``ranker_features`` partitions of W-k..W-1, so those are
    built first (only what is stale or missing), each as of its own cutoff.
    """
    from hm_recsys.defs import runner
    from hm_recsys.defs.assets.ranking import TRAIN_WEEKS
    from hm_recsys.defs.partitions import data_date_range, target_weeks_for
    from hm_recsys.weeks import TargetWeek

    existing = set(target_weeks_for(*data_date_range(paths.raw)).get_partition_keys())
    targets = sorted(week_keys)
    training = sorted(
        {TargetWeek.from_key(k).shift(-j).key for k in targets for j in range(1, TRAIN_WEEKS + 1)} & existing - set(targets)
    )
    runner.observe_raw(paths)
    runner.run_job(paths, "tables_job", only_stale=not force)
    runner.run_job(paths, "images_job", only_stale=not force, asset_config=asset_config)
    feature_assets = runner.upstream_asset_names(paths, "ranker_features")
    for key in training + targets:
        t0 = time.perf_counter()
        role = "training week (ranker features)" if key in training else "target week"
        print(f"week {key}: {role}, materializing through Dagster")
        runner.run_job(paths, "retrieval_job", partition_key=key, only_stale=not force, asset_config=asset_config)
        runner.run_job(paths, "weekly_job", partition_key=key, only_stale=not force,
                       assets=feature_assets if key in training else None, asset_config=asset_config)
        print(f"week {key}: done in {time.perf_counter() - t0:.0f}s")


def format_table(paths: DataPaths, week_keys: list[str]) -> str:
    reports = [json.loads(paths.metrics(k).read_text()) for k in week_keys if paths.metrics(k).exists()]
    names = sorted({n for r in reports for n in r["map12"]}, key=lambda n: -sum(r["map12"].get(n, 0) for r in reports))
    header = "| recommender | " + " | ".join(r["week"] for r in reports) + " | mean |"
    lines = [header, "|---" * (len(reports) + 2) + "|"]
    for n in names:
        vals = [r["map12"].get(n) for r in reports]
        mean = sum(v for v in vals if v is not None) / max(1, sum(v is not None for v in vals))
        lines.append(f"| {n} | " + " | ".join("-" if v is None else f"{v:.5f}" for v in vals) + f" | {mean:.5f} |")
    lines.append("| buyers | " + " | ".join(str(r["buyers"]) for r in reports) + " | |")
    return "\n".join(lines)


def cmd_backtest(args) -> int:
    paths = _paths(args)
    weeks = _backtest_weeks(paths, args.weeks)
    run_weeks(paths, weeks, force=args.force, asset_config=load_asset_config(args.config))
    print(f"\nMAP@12 by target week ({paths.root}):\n")
    print(format_table(paths, weeks))
    return 0


def cmd_predict(args) -> int:
    """The production week (after the data ends): the ranker's ``final.csv`` for every customer."""
    from hm_recsys.defs.partitions import data_date_range, production_week_key, target_weeks_for

    paths = _paths(args)
    key = production_week_key(target_weeks_for(*data_date_range(paths.raw)))
    run_weeks(paths, [key], force=args.force, asset_config=load_asset_config(args.config))
    print(f"production week {key}: {paths.submission(key, 'final')}")
    return 0


def cmd_demo(args) -> int:
    paths = _paths(args)
    t0 = time.perf_counter()
    _ensure_world(paths, seed=args.seed)
    args.weeks = 1
    cmd_backtest(args)
    cmd_predict(args)
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f}s; browse it with `make ui` (dagster dev)")
    return 0


def cmd_ui(args) -> int:
    """``dagster dev`` on 127.0.0.1 over the data folder's persistent instance (what the CLI runs show up in)."""
    import os

    from hm_recsys.defs import runner

    paths = _paths(args)
    runner.instance_for(paths)  # writes <data>/dagster_home/dagster.yaml, sets DAGSTER_HOME and HM_DATA_DIR
    dagster = str(Path(sys.executable).parent / "dagster")
    os.chdir(runner.REPO_ROOT)
    os.execv(dagster, [dagster, "dev", "-h", "127.0.0.1", "-p", str(args.port), "-w", "workspace.yaml"])


def main(argv: list[str] | None = None) -> int:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter, in every step process
    parser = argparse.ArgumentParser(prog="hm-recsys", description=__doc__)
    parser.add_argument("--data-dir", help="data folder (default ./data or $HM_DATA_DIR)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="write a synthetic H&M world in the Kaggle schema")
    p.add_argument("--scale", choices=["tiny", "demo", "full"], default="demo")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="output folder (raw files go to OUT/raw; default: the data folder)")
    p.add_argument("--images", choices=["yes", "no"], help="write article images (default: per scale)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("profile", help="print a dataset's statistics beside the real H&M figures")
    p.add_argument("dir", nargs="?", help="a data folder or its raw/ folder (default: the data folder)")
    p.set_defaults(func=cmd_profile)

    for name, func, help_ in [
        ("backtest", cmd_backtest, "materialize the last N weeks with data through Dagster and print MAP@12"),
        ("predict", cmd_predict, "materialize the production week and write submissions/<week>/final.csv"),
        ("demo", cmd_demo, "generate the demo world if absent, backtest the last week, predict"),
    ]:
        p = sub.add_parser(name, help=help_)
        p.add_argument("--force", action="store_true", help="rematerialize even what is up to date")
        p.add_argument("--config", help="YAML/JSON: asset name -> config values (e.g. ranker_hparams: {n_trials: 5})")
        if name == "backtest":
            p.add_argument("--weeks", type=int, default=1)
        if name == "demo":
            p.add_argument("--seed", type=int, default=0)
        p.set_defaults(func=func)

    p = sub.add_parser("ui", help="open the Dagster UI (dagster dev) on http://127.0.0.1:PORT")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(func=cmd_ui)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
