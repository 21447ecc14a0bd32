import datetime as dt

import polars as pl
import pytest

from hm_recsys.defs.partitions import target_weeks_for
from hm_recsys.weeks import TargetWeek, history, labels, week_start


def test_weeks_run_wednesday_to_tuesday():
    assert week_start(dt.date(2020, 9, 22)) == dt.date(2020, 9, 16)  # Tuesday -> the Wednesday before
    assert week_start(dt.date(2020, 9, 23)) == dt.date(2020, 9, 23)
    w = TargetWeek.from_key("2020-09-16")
    assert (w.end, w.train_start, w.finetune_start) == (dt.date(2020, 9, 23), dt.date(2019, 9, 17), dt.date(2020, 8, 17))
    with pytest.raises(ValueError, match="Wednesday"):
        TargetWeek(dt.date(2020, 9, 17))


def test_history_and_labels_split_on_the_cutoff():
    tx = pl.DataFrame({"t_dat": [dt.date(2020, 9, 15), dt.date(2020, 9, 16), dt.date(2020, 9, 22), dt.date(2020, 9, 23)]})
    w = TargetWeek.from_key("2020-09-16")
    assert history(tx, w)["t_dat"].to_list() == [dt.date(2020, 9, 15)]
    assert labels(tx, w)["t_dat"].to_list() == [dt.date(2020, 9, 16), dt.date(2020, 9, 22)]
    assert history(tx, w.shift(1), days=7)["t_dat"].to_list() == [dt.date(2020, 9, 16), dt.date(2020, 9, 22)]


def test_partitions_follow_the_data_and_end_with_the_production_week():
    p = target_weeks_for(dt.date(2018, 9, 20), dt.date(2020, 9, 22))
    keys = p.get_partition_keys()
    assert keys[-1] == "2020-09-23" and keys[-2] == "2020-09-16"
    assert all(TargetWeek.from_key(k).start.weekday() == 2 for k in keys)
    assert TargetWeek.from_key(keys[0]).start >= dt.date(2018, 9, 20) + dt.timedelta(weeks=8)
    # data ending mid-week: the production week is the next full week
    assert target_weeks_for(dt.date(2020, 1, 1), dt.date(2020, 9, 18)).get_partition_keys()[-1] == "2020-09-23"
