"""Target-week partitions, built from the date range the raw transactions actually cover.

Partition W = "recommendations for the week starting W, learned only from transactions before W".
The first partition leaves ``MIN_HISTORY_WEEKS`` of history; the last is the week after the data
ends (production, no labels yet).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg

from hm_recsys.schema import TRANSACTIONS_CSV
from hm_recsys.weeks import KEY_FORMAT, WEEK_DAYS, week_start

MIN_HISTORY_WEEKS = 8
# The competition's range: used when no raw data is present yet, so the UI still loads.
DEFAULT_RANGE = (dt.date(2018, 9, 20), dt.date(2020, 9, 22))


def data_date_range(raw_dir: Path) -> tuple[dt.date, dt.date]:
    from hm_recsys.ingest import read_date_range

    csv = raw_dir / TRANSACTIONS_CSV
    return read_date_range(csv) if csv.exists() else DEFAULT_RANGE


def target_weeks_for(first_day: dt.date, last_day: dt.date) -> dg.WeeklyPartitionsDefinition:
    start = week_start(first_day + dt.timedelta(weeks=MIN_HISTORY_WEEKS, days=WEEK_DAYS - 1))  # first Wednesday on/after
    production = week_start(last_day) + dt.timedelta(days=WEEK_DAYS)
    return dg.WeeklyPartitionsDefinition(
        start_date=start.strftime(KEY_FORMAT),
        end_date=(production + dt.timedelta(days=WEEK_DAYS)).strftime(KEY_FORMAT),
        day_offset=2 + 1,  # Dagster counts from Sunday = 0; H&M weeks start on Wednesday
        fmt=KEY_FORMAT,
    )


def production_week_key(partitions: dg.WeeklyPartitionsDefinition) -> str:
    return partitions.get_last_partition_key()
