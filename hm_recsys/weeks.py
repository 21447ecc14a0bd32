"""The competition's week calendar: weeks run Wednesday..Tuesday.

A *target week* W is named by its first day (a Wednesday, ``YYYY-MM-DD``). Everything computed for
W is learned from transactions strictly before ``W.start``; W itself is only ever a label.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from hm_recsys.tables import Tables

WEEK_DAYS = 7
WEDNESDAY = 2  # date.weekday(): Monday = 0
TRAIN_DAYS = 365
FINETUNE_DAYS = 30
KEY_FORMAT = "%Y-%m-%d"


def week_start(day: dt.date) -> dt.date:
    """The Wednesday that opens the week containing ``day``."""
    return day - dt.timedelta(days=(day.weekday() - WEDNESDAY) % WEEK_DAYS)


@dataclass(frozen=True)
class TargetWeek:
    """Target week W and the windows the original design learns it from."""

    start: dt.date

    def __post_init__(self) -> None:
        if self.start.weekday() != WEDNESDAY:
            raise ValueError(f"a target week starts on a Wednesday, got {self.start} ({self.start:%A})")

    @classmethod
    def from_key(cls, key: str) -> "TargetWeek":
        return cls(dt.datetime.strptime(key, KEY_FORMAT).date())

    @property
    def key(self) -> str:
        return self.start.strftime(KEY_FORMAT)

    @property
    def end(self) -> dt.date:
        """First day after the week (exclusive bound)."""
        return self.start + dt.timedelta(days=WEEK_DAYS)

    @property
    def cutoff(self) -> dt.date:
        """Transactions on or after this day are invisible to anything computed for W."""
        return self.start

    @property
    def train_start(self) -> dt.date:
        return self.start - dt.timedelta(days=TRAIN_DAYS)

    @property
    def finetune_start(self) -> dt.date:
        return self.start - dt.timedelta(days=FINETUNE_DAYS)

    def shift(self, weeks: int) -> "TargetWeek":
        return TargetWeek(self.start + dt.timedelta(days=WEEK_DAYS * weeks))

    def __str__(self) -> str:
        return self.key


def history(transactions: pl.DataFrame | pl.LazyFrame, week: TargetWeek, days: int | None = None):
    """Transactions visible when predicting ``week``: strictly before its start, optionally only the last ``days``.

    The one gate every feature, candidate source and model goes through; the leakage tests perturb
    rows on or after ``week.start`` and check that nothing downstream changes.
    """
    cond = pl.col("t_dat") < week.cutoff
    if days is not None:
        cond = cond & (pl.col("t_dat") >= week.cutoff - dt.timedelta(days=days))
    return transactions.filter(cond)


def past(tables: Tables, week: TargetWeek, days: int | None = None) -> pl.LazyFrame:
    """``history`` of the tables' transactions with ``days_ago`` (>= 1: days from the purchase to the cutoff).

    What candidate sources and ranker features read transactions through.
    """
    return history(tables.transactions.lazy(), week, days=days).with_columns(
        days_ago=(pl.lit(week.cutoff) - pl.col("t_dat")).dt.total_days().cast(pl.Int32)
    )


def labels(transactions: pl.DataFrame | pl.LazyFrame, week: TargetWeek):
    """The week's own purchases: the ground truth for evaluation and ranker labels, never a feature."""
    return transactions.filter((pl.col("t_dat") >= week.start) & (pl.col("t_dat") < week.end))
