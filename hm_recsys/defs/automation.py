"""Declarative automation: which asset partitions Dagster (re)builds by itself, and when.

One condition for every asset: build a partition inside the active window when it is missing or
unsynced (code version, config or an input's data changed), once its inputs are present, synced and
not being rebuilt. The window is the production week plus ``eval_weeks`` labelled weeks for the assets
that end in a scored submission, and ``TRAIN_WEEKS`` more weeks for what the ranker's training weeks
need. The same condition drives the automation sensor under ``dagster dev`` and the CLI
(``defs/launcher.py``), so both converge to the from-scratch result.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from hm_recsys.defs.partitions import TRAIN_WEEKS
from hm_recsys.defs.staleness import Unsynced

AC = dg.AutomationCondition
# The newest labelled week is scored by default (its `final` against its purchases).
DEFAULT_EVAL_WEEKS = 1
SENSOR_INTERVAL_S = 30


def _weeks(n: int) -> dt.timedelta:
    return dt.timedelta(weeks=n)


def rebuild(window_weeks: int, *, hold_failed: bool = True) -> dg.AutomationCondition:
    """Missing or unsynced, inside the newest ``window_weeks`` partitions, with every input ready.

    ``hold_failed``: a partition whose latest run failed waits for a change of its inputs or code
    instead of being retried on every tick (a bad raw file would otherwise fail every 30 seconds).
    """
    broken = AC.any_checks_match(AC.check_failed(), blocking_only=True)
    wanted = AC.in_latest_time_window(_weeks(window_weeks)) & (AC.missing() | Unsynced() | broken.with_label("blocking_check_failed"))
    inputs_ready = (
        ~AC.any_deps_missing()
        & ~AC.any_deps_in_progress()
        & ~AC.any_deps_match(Unsynced(upstream=True) & ~AC.will_be_requested()).with_label("any_deps_unsynced_here_or_upstream")
        & ~AC.any_deps_match(broken & ~AC.will_be_requested()).with_label("any_dep_failed_a_blocking_check")
    )
    condition = wanted & inputs_ready & ~AC.in_progress()
    if hold_failed:
        failed = AC.execution_failed().since(AC.any_deps_updated() | AC.code_version_changed())
        condition = condition & ~failed.with_label("failed_since_last_change")
    return condition.with_label(f"rebuild_last_{window_weeks}_weeks")


def conditions(eval_weeks: int = DEFAULT_EVAL_WEEKS, *, hold_failed: bool = True) -> dict[str, dg.AutomationCondition]:
    """``scored``: assets that end in a scored week; ``upstream``: what the ranker's training weeks need too."""
    scored = eval_weeks + 1
    return {
        "scored": rebuild(scored, hold_failed=hold_failed),
        "upstream": rebuild(scored + TRAIN_WEEKS, hold_failed=hold_failed),
        "unpartitioned": rebuild(1, hold_failed=hold_failed),
    }


def automation_sensor() -> dg.AutomationConditionSensorDefinition:
    """On by default: ``dagster dev`` rebuilds what changed with no click. Runs in the code server
    (``use_user_code_server``) because the ``unsynced`` condition is ours."""
    return dg.AutomationConditionSensorDefinition(
        "rebuild_what_changed",
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=SENSOR_INTERVAL_S,
        use_user_code_server=True,
        description="Rebuilds missing or unsynced asset partitions of the active weeks (see hm_recsys/defs/automation.py).",
    )
