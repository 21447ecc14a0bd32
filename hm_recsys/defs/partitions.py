"""Target-week partitions, built from the date range the raw transactions actually cover.

Partition W = "recommendations for the week starting W, learned only from transactions before W".
The first partition leaves ``MIN_HISTORY_WEEKS`` of history; the last is the week after the data
ends (production, no labels yet). The ranker of W learns from the ``TRAIN_WEEKS`` weeks before W, so
the ranking assets start ``TRAIN_WEEKS`` partitions later: every ranking partition has its training
weeks. When a week of data is appended the range grows; ``sensors.raw_files_sensor`` reloads the code
location so the new week appears.

The range is the data's, never the calendar's: Dagster creates a time window only once it has ended
relative to *now*, so with live data (ending yesterday) the production week would not exist until it
is over, and predict, the schedule and automation would target last week. See ``_weekly``.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import dagster as dg

from hm_recsys.schema import TRANSACTIONS_CSV
from hm_recsys.weeks import KEY_FORMAT, WEEK_DAYS, week_start

MIN_HISTORY_WEEKS = 8
# How many past weeks the ranker trains on. It shapes the partition mappings, so it is a
# definition-time setting (env HM_RANKER_TRAIN_WEEKS), not run config.
TRAIN_WEEKS = int(os.environ.get("HM_RANKER_TRAIN_WEEKS", "2"))
# The competition's range: used when no raw data is present yet, so the UI still loads.
DEFAULT_RANGE = (dt.date(2018, 9, 20), dt.date(2020, 9, 22))


def data_date_range(raw_dir: Path) -> tuple[dt.date, dt.date]:
    from hm_recsys.ingest import read_date_range

    csv = raw_dir / TRANSACTIONS_CSV
    return read_date_range(csv) if csv.exists() else DEFAULT_RANGE


def week_keys(first_day: dt.date, last_day: dt.date) -> tuple[str, str]:
    """(first target week, production week) for data covering ``first_day``..``last_day``."""
    start = week_start(first_day + dt.timedelta(weeks=MIN_HISTORY_WEEKS, days=WEEK_DAYS - 1))  # first Wednesday on/after
    production = week_start(last_day) + dt.timedelta(days=WEEK_DAYS)
    return start.strftime(KEY_FORMAT), production.strftime(KEY_FORMAT)


def _weekly(start: str, production: str, first_day: dt.date) -> dg.WeeklyPartitionsDefinition:
    """Weeks ``start``..``production``, whatever the clock says.

    Dagster's last time partition is the last week that has *ended* by now, so live data (ending
    yesterday) would have no production week until that week is over. ``end_offset`` adds weeks past
    now and ``end_date`` still caps the range (Dagster takes the earlier, see its
    ``_get_last_partition_window``): the offset spans the data plus a week, so from any moment since the
    data began it reaches past the production week and the cap decides, for old data (the 2020 world)
    and live data alike, and still once the clock crosses a week boundary with the code location
    loaded. Like ``end_date`` it depends on the data only, never on today.
    """
    end = dt.datetime.strptime(production, KEY_FORMAT) + dt.timedelta(days=WEEK_DAYS)
    lookahead = (end.date() - week_start(first_day)).days // WEEK_DAYS + 1
    return dg.WeeklyPartitionsDefinition(
        start_date=start,
        end_date=end.strftime(KEY_FORMAT),
        day_offset=2 + 1,  # Dagster counts from Sunday = 0; H&M weeks start on Wednesday
        fmt=KEY_FORMAT,
        end_offset=lookahead,
    )


def target_weeks_for(first_day: dt.date, last_day: dt.date) -> dg.WeeklyPartitionsDefinition:
    return _weekly(*week_keys(first_day, last_day), first_day)


def ranking_weeks_for(first_day: dt.date, last_day: dt.date) -> dg.WeeklyPartitionsDefinition:
    start, production = week_keys(first_day, last_day)
    first = dt.datetime.strptime(start, KEY_FORMAT) + dt.timedelta(weeks=TRAIN_WEEKS)
    return _weekly(min(first.strftime(KEY_FORMAT), production), production, first_day)


def production_week_key(partitions: dg.WeeklyPartitionsDefinition) -> str:
    return partitions.get_last_partition_key()
