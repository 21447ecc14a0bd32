"""hm-recsys: generate a world, profile it, and drive the Dagster platform from a terminal.

backtest / predict / demo are clients of the instance: Dagster's daemon builds every missing or unsynced
asset partition of the active weeks (its automation sensors decide, its run queue launches), the command
follows the runs and prints the MAP@12 table. The instance is $DAGSTER_HOME's when set, else the embedded
default (the repository's dagster.yaml, storage in the data folder; the command starts a daemon for it).
The data folder is ./data unless --data-dir or HM_DATA_DIR says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from hm_recsys.paths import DataPaths, default_data_dir

REPO_ROOT = Path(__file__).resolve().parents[1]


class UsageError(ValueError):
    pass


def _paths(args) -> DataPaths:
    return DataPaths(Path(args.data_dir).resolve() if args.data_dir else default_data_dir())


def _past_day(text: str):
    import datetime as dt

    day = dt.date.fromisoformat(text)
    if day > dt.date.today():
        raise argparse.ArgumentTypeError(f"{day} is in the future: ingestion refuses sales after today")
    return day


def cmd_generate(args) -> int:
    from hm_recsys.synth import generate_world

    out = Path(args.out).resolve() if args.out else _paths(args).root
    t0 = time.perf_counter()
    images = None if args.images is None else args.images == "yes"
    raw = generate_world(out, scale=args.scale, seed=args.seed, images=images)
    if args.end_date:  # the same world, moved by whole weeks to end that day (e.g. yesterday: live data)
        from hm_recsys.synth.shift import shift_world_to_end

        shift_world_to_end(raw, args.end_date)
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


def _production_week(paths: DataPaths) -> str:
    from hm_recsys.defs.partitions import data_date_range, production_week_key, target_weeks_for

    return production_week_key(target_weeks_for(*data_date_range(paths.raw)))


def _ensure_world(paths: DataPaths, scale: str = "demo", seed: int = 0) -> None:
    from hm_recsys.schema import TRANSACTIONS_CSV

    if not (paths.raw / TRANSACTIONS_CSV).exists():
        from hm_recsys.synth import generate_world

        print(f"no raw data in {paths.raw}: generating the {scale} synthetic world (seed {seed})")
        generate_world(paths.root, scale=scale, seed=seed)


def _use_config(args, paths: DataPaths) -> None:
    """Validate the config file before anything runs; its path travels to every step process."""
    from hm_recsys.defs.config import CONFIG_ENV, config_path, read_config

    path = config_path(paths.root, getattr(args, "config", None))
    read_config(path)
    if path is not None:
        os.environ[CONFIG_ENV] = str(path)


def materialize(paths: DataPaths, eval_weeks: int) -> None:
    """Have the daemon build every missing or unsynced partition of the active weeks; follow its runs."""
    from hm_recsys.defs import client

    t0 = time.perf_counter()
    runs = client.settle(paths, eval_weeks=eval_weeks, say=lambda line: print(f"  {line}", flush=True))
    print(f"{runs} run(s) in {time.perf_counter() - t0:.0f}s" if runs else "everything up to date: no run needed")


def require(paths: DataPaths, files: list[Path], why: str) -> None:
    """Automation settled: what the command promised must exist (a daemon serving a narrower window would not build it)."""
    from hm_recsys.defs.client import PipelineError

    missing = [str(f.relative_to(paths.root)) for f in files if not f.exists()]
    if missing:
        raise PipelineError(f"automation settled without {', '.join(missing)} ({why}); the daemon serving this "
                            f"instance may score fewer weeks: set HM_EVAL_WEEKS for its code location")


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
    if args.weeks < 1:
        raise UsageError(f"--weeks must be at least 1, got {args.weeks}")
    _use_config(args, paths)
    weeks = _backtest_weeks(paths, args.weeks)
    materialize(paths, eval_weeks=len(weeks))
    require(paths, [paths.metrics(k) for k in weeks], f"the last {len(weeks)} labelled week(s)")
    print(f"\nMAP@12 by target week ({paths.root}):\n")
    print(format_table(paths, weeks))
    return 0


def cmd_predict(args) -> int:
    """The production week (after the data ends): the ranker's final.csv for every customer."""
    paths = _paths(args)
    _use_config(args, paths)
    materialize(paths, eval_weeks=0)
    key = _production_week(paths)
    require(paths, [paths.submission(key, "final")], "the production week")
    print(f"production week {key}: {paths.submission(key, 'final')}")
    return 0


def cmd_demo(args) -> int:
    """Generate the world if absent, score the newest labelled week and predict the production week."""
    paths = _paths(args)
    t0 = time.perf_counter()
    _use_config(args, paths)
    _ensure_world(paths, seed=args.seed)
    materialize(paths, eval_weeks=1)
    key = _production_week(paths)
    require(paths, [*(paths.metrics(k) for k in _backtest_weeks(paths, 1)), paths.submission(key, "final")],
            "the newest labelled week and the production week")
    print(f"\nMAP@12 ({paths.root}):\n")
    print(format_table(paths, _backtest_weeks(paths, 1)))
    print(f"\nproduction week {key}: {paths.submission(key, 'final')}")
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f}s; browse it with `make ui` (dagster dev)")
    return 0


def cmd_ui(args) -> int:
    """dagster dev on 127.0.0.1 over the data folder's instance (webserver and daemon)."""
    from hm_recsys.defs import client
    from hm_recsys.defs.sensors import URL_ENV

    paths = _paths(args)
    _use_config(args, paths)
    where = client.use_instance(paths)  # sets DAGSTER_HOME (and the embedded default's storage folder)
    if where.embedded:
        client.claim(paths, f"dagster dev (hm-recsys ui on port {args.port})")  # exec keeps this pid
    os.environ[URL_ENV] = f"http://127.0.0.1:{args.port}"
    os.environ["PYTHONWARNINGS"] = "ignore:Function `dev_command` is superseded"  # `dg dev` is not in our pinned set
    dagster = str(Path(sys.executable).parent / "dagster")
    os.chdir(REPO_ROOT)
    os.execv(dagster, [dagster, "dev", "-h", "127.0.0.1", "-p", str(args.port), "-w", "workspace.yaml"])


def cmd_serve(args) -> int:
    """The online API over the data folder's serving snapshots (hm_recsys/serving/app.py), on 127.0.0.1 by default."""
    import logging

    import uvicorn

    from hm_recsys.serving.app import create_app
    from hm_recsys.serving.snapshot import serving_root

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")  # switches, refusals
    root = serving_root(_paths(args).root)
    print(f"serving {root} on http://{args.host}:{args.port} (GET /page, /recommendations/<customer_id>, /health, /version)", flush=True)
    uvicorn.run(create_app(root), host=args.host, port=args.port, log_level="info")
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter, in every step process
    import warnings

    import dagster as dg

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    data_dir = argparse.ArgumentParser(add_help=False)
    data_dir.add_argument("--data-dir", default=argparse.SUPPRESS, help="data folder (default ./data or $HM_DATA_DIR)")
    parser = argparse.ArgumentParser(prog="hm-recsys", description=__doc__, parents=[data_dir])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", parents=[data_dir], help="write a synthetic H&M world in the Kaggle schema")
    p.add_argument("--scale", choices=["tiny", "demo", "full"], default="demo")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="output folder (raw files go to OUT/raw; default: the data folder)")
    p.add_argument("--images", choices=["yes", "no"], help="write article images (default: per scale)")
    p.add_argument("--end-date", type=_past_day, metavar="YYYY-MM-DD",
                   help="move the world by whole weeks to end on this day, cutting the days after it (default: 2020-09-22)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("profile", parents=[data_dir], help="print a dataset's statistics beside the real H&M figures")
    p.add_argument("dir", nargs="?", help="a data folder or its raw/ folder (default: the data folder)")
    p.set_defaults(func=cmd_profile)

    for name, func, help_ in [
        ("backtest", cmd_backtest, "build and score the last N labelled weeks (what automation would), print MAP@12"),
        ("predict", cmd_predict, "build the production week: submissions/<week>/final.csv"),
        ("demo", cmd_demo, "generate the demo world if absent, score the newest labelled week, predict"),
        ("ui", cmd_ui, "open the Dagster UI (dagster dev) on http://127.0.0.1:PORT; it rebuilds what changes by itself"),
    ]:
        p = sub.add_parser(name, parents=[data_dir], help=help_)
        p.add_argument("--config", help="YAML: asset name -> settings, e.g. ranker_hparams: {n_trials: 5} "
                                        "(default $HM_CONFIG, else <data>/config.yaml if present)")
        if name == "backtest":
            p.add_argument("--weeks", type=int, default=1)
        if name == "demo":
            p.add_argument("--seed", type=int, default=0)
        if name == "ui":
            p.add_argument("--port", type=int, default=3000)
        p.set_defaults(func=func)

    p = sub.add_parser("serve", parents=[data_dir], help="serve the production week's recommendations over HTTP (FastAPI)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_serve)

    args = parser.parse_args(argv)
    args.data_dir = getattr(args, "data_dir", None)
    from hm_recsys.defs.client import FolderBusy, PipelineError
    from hm_recsys.defs.config import ConfigError
    from hm_recsys.ingest import RawDataError

    try:
        return args.func(args)
    except FolderBusy as e:
        print(f"hm-recsys: {e}", file=sys.stderr)
        return 75
    except (ConfigError, PipelineError, RawDataError, UsageError) as e:
        print(f"hm-recsys: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
