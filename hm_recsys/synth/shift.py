"""Move a world in time: the same purchases, whole weeks later (or earlier), ending on a given day.

Only ``transactions_train.csv`` carries dates (``t_dat``); articles, customers and images have none
(see ``schema.py``), so they stay as they are. Shifting by whole weeks keeps every purchase on its
weekday (weekly rhythm, Wednesday..Tuesday target weeks); the days after ``last_day`` (at most six,
when ``last_day`` is not the world's own last weekday) are cut, so the newest week may be partial, as
live data ending mid-week is.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from hm_recsys import io
from hm_recsys.schema import TRANSACTIONS_CSV
from hm_recsys.weeks import KEY_FORMAT, WEEK_DAYS


def shift_world_to_end(raw_dir: str | Path, last_day: dt.date) -> tuple[dt.date, dt.date]:
    """Rewrite ``raw_dir/transactions_train.csv`` so that its last day is ``last_day``.

    Dates move by the fewest whole weeks that bring the old last day on or after ``last_day``, then the
    rows after ``last_day`` are dropped; every other byte of every row stays as it was. Returns the new
    (first, last) day; ``last`` is ``last_day`` unless the world had no sale on that weekday.
    """
    from hm_recsys.ingest import read_date_range

    csv = Path(raw_dir) / TRANSACTIONS_CSV
    _, old_last = read_date_range(csv)
    days = -((old_last - last_day).days // WEEK_DAYS) * WEEK_DAYS  # ceil to whole weeks
    day = pl.col("t_dat").str.to_date(KEY_FORMAT) + pl.duration(days=days)
    with io.atomic_path(csv) as tmp:
        (pl.scan_csv(csv, infer_schema=False)  # every column as text: only t_dat is rewritten
         .with_columns(day.alias("t_dat"))
         .filter(pl.col("t_dat") <= last_day)
         .with_columns(pl.col("t_dat").dt.strftime(KEY_FORMAT))
         .sink_csv(tmp))
    return read_date_range(csv)
