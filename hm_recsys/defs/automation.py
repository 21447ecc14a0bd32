"""Declarative automation: which asset partitions Dagster (re)builds by itself, and when.

One condition for every asset: build a partition inside the active window when it is missing or
unsynced (code version, config or an input's data changed), once its inputs are present, synced and
not being rebuilt. The window is the production week plus ``eval_weeks`` labelled weeks for the assets
that end in a scored submission, and ``TRAIN_WEEKS`` more weeks for what the ranker's training weeks
need. The daemon's automation sensors (one per stage, so the run queue can tell week runs apart) are
the only thing that decides what runs: under ``dagster dev``, under a deployment, and when the CLI asks
(``defs/client.py`` starts a daemon with the window it needs and follows its runs).

The window, the sensors' interval and whether a failed partition is retried are read from the
environment when the code location loads (``settings``): a deployment sets them once; the CLI sets them
for the daemon it starts.
"""

from __future__ import annotations

import datetime as dt
import os

import dagster as dg

from hm_recsys.defs.jobs import STAGE_TAG, stages
from hm_recsys.defs.partitions import TRAIN_WEEKS
from hm_recsys.defs.staleness import Missing, Unsynced

AC = dg.AutomationCondition
# The newest labelled week is scored by default (its `final` against its purchases).
DEFAULT_EVAL_WEEKS = 1
SENSOR_INTERVAL_S = 30
EVAL_WEEKS_ENV = "HM_EVAL_WEEKS"
INTERVAL_ENV = "HM_AUTOMATION_INTERVAL_S"
RETRY_FAILED_ENV = "HM_RETRY_FAILED"  # "1": a failed partition is requested again on the next tick


def settings(env=None) -> dict:
    """``eval_weeks``, ``interval_s``, ``hold_failed`` from the environment (defaults: 1 week, 30 s, hold)."""
    env = os.environ if env is None else env

    def number(name: str, default: int, least: int) -> int:
        raw = env.get(name, "").strip()
        try:
            value = int(raw) if raw else default
        except ValueError:
            raise ValueError(f"{name}={raw!r}: expected a whole number") from None
        if value < least:
            raise ValueError(f"{name}={value}: expected at least {least}")
        return value

    return {"eval_weeks": number(EVAL_WEEKS_ENV, DEFAULT_EVAL_WEEKS, 0),
            "interval_s": number(INTERVAL_ENV, SENSOR_INTERVAL_S, 1),
            "hold_failed": env.get(RETRY_FAILED_ENV, "") != "1"}


def _weeks(n: int) -> dt.timedelta:
    return dt.timedelta(weeks=n)


def rebuild(window_weeks: int, *, hold_failed: bool = True, self_dependent: str | None = None) -> dg.AutomationCondition:
    """Missing or unsynced, inside the newest ``window_weeks`` partitions, with every input ready.

    ``hold_failed``: a partition whose latest run failed waits for a change of its inputs or code
    instead of being retried on every tick (a bad raw file would otherwise fail every 30 seconds).
    ``self_dependent``: the asset's key when it reads its own previous partition (``ranker_hparams`` warm
    starts from last week's). That input is optional: week W waits while W-1 is in progress, or missing or
    unsynced inside the window (automation builds it, then W), but a W-1 outside the window, which automation
    never builds, must not hold W back (the oldest week of the window would wait forever).
    """
    broken = AC.any_checks_match(AC.check_failed(), blocking_only=True)

    def stale(live: bool = False):
        return Missing() | Unsynced(live=live) | broken.with_label("blocking_check_failed")

    wanted = AC.in_latest_time_window(_weeks(window_weeks)) & stale()
    own = dg.AssetSelection.assets(self_dependent) if self_dependent else None

    def others(condition):
        return condition.ignore(own) if own is not None else condition

    inputs_ready = (
        ~others(AC.any_deps_match(Missing() & ~AC.will_be_requested())).with_label("any_deps_missing")
        & ~AC.any_deps_in_progress()
        & ~others(AC.any_deps_match(Unsynced(upstream=True) & ~AC.will_be_requested())).with_label("any_deps_unsynced_here_or_upstream")
        & ~others(AC.any_deps_match(broken & ~AC.will_be_requested())).with_label("any_dep_failed_a_blocking_check")
    )
    if own is not None:  # will_be_requested is empty for the asset's own partitions while it is evaluated: W waits a tick
        previous = AC.in_latest_time_window(_weeks(window_weeks)) & (Missing() | Unsynced())
        inputs_ready = inputs_ready & ~AC.any_deps_match(previous).allow(own).with_label("previous_partition_pending")
    # ``in_progress`` first: an evaluation reads each operand when it gets to it, and a run that ends in between
    # was "missing" when read first and "not in progress" when read second, so its partitions were requested
    # again (duplicate runs, seen on every tiny backtest). Read in this order, a run not in progress any more
    # has already written its materializations when ``missing`` is read (``Missing`` reads the event log then, not
    # Dagster's status cache, which can lose a materialization for good: defs/staleness.py).
    # ``stale`` once more last, read live: a run that rebuilt an input and ended during the evaluation left the input
    # missing in the tick's prefetched records (``wanted``) while ``inputs_ready`` found it present and done; asked
    # again now, ``Unsynced`` compares the input's new materialization (same bytes: nothing to do).
    condition = ~AC.in_progress() & wanted & inputs_ready & stale(live=True).with_label("still_missing_or_unsynced")
    if hold_failed:
        failed = AC.execution_failed().since(AC.any_deps_updated() | AC.code_version_changed())
        condition = condition & ~failed.with_label("failed_since_last_change")
    return condition.with_label(f"rebuild_last_{window_weeks}_weeks")


def conditions(eval_weeks: int = DEFAULT_EVAL_WEEKS, *, hold_failed: bool = True) -> dict[str, dg.AutomationCondition]:
    """``scored``: assets that end in a scored week; ``upstream``: what the ranker's training weeks need too;
    ``tuning``: ``scored`` for ``ranker_hparams``, which warm-starts from its own previous week."""
    scored = eval_weeks + 1
    return {
        "scored": rebuild(scored, hold_failed=hold_failed),
        "tuning": rebuild(scored, hold_failed=hold_failed, self_dependent="ranker_hparams"),
        "upstream": rebuild(scored + TRAIN_WEEKS, hold_failed=hold_failed),
        "unpartitioned": rebuild(1, hold_failed=hold_failed),
    }


def automation_sensors(interval_s: int = SENSOR_INTERVAL_S) -> list[dg.AutomationConditionSensorDefinition]:
    """On by default: the daemon rebuilds what changed with no click. One sensor per stage, whose runs
    carry the stage's tag (the run queue lets one week run go at a time). Each requests runs, not
    backfills, so every run is one the queue can order. Runs in the code server
    (``use_user_code_server``) because the ``unsynced`` condition is ours."""
    return [
        dg.AutomationConditionSensorDefinition(
            f"rebuild_{stage}",
            target=selection,
            run_tags={STAGE_TAG: stage},
            emit_backfills=False,
            default_status=dg.DefaultSensorStatus.RUNNING,
            minimum_interval_seconds=interval_s,
            use_user_code_server=True,
            description=f"Rebuilds missing or unsynced {stage} asset partitions of the active weeks (see hm_recsys/defs/automation.py).",
        )
        for stage, selection in stages().items()
    ]
