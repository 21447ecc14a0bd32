"""A live calendar: data that ends yesterday (not in 2020) still has its production week as the last
partition, for predict, the weekly schedule and automation, whatever the clock says."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import polars as pl
import pytest

from hm_recsys.defs.partitions import production_week_key, ranking_weeks_for, target_weeks_for
from hm_recsys_tests import conftest
from hm_recsys_tests.conftest import FAST, YESTERDAY, cli

UTC = dt.timezone.utc
TODAY = dt.date(2026, 12, 6)  # a Sunday: the day this was written


def production_after(last_day: dt.date) -> str:
    """The Wednesday after the Tuesday that closes ``last_day``'s week (computed apart from weeks.py)."""
    return str(last_day + dt.timedelta(days=(1 - last_day.weekday()) % 7 + 1))


def at(day: dt.date, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), UTC)


def last_keys(partitions: dg.WeeklyPartitionsDefinition, now: dt.datetime) -> tuple[str, list[str]]:
    with dg.partition_loading_context(now):
        return production_week_key(partitions), partitions.get_partition_keys()


@pytest.mark.parametrize("last_day, production", [
    (dt.date(2026, 12, 1), "2026-12-02"),   # data ends on a Tuesday: the week that started the next day
    (dt.date(2026, 12, 5), "2026-12-09"),   # ends on a Saturday: the partial week is history, next full week
    (dt.date(2020, 9, 22), "2020-09-23"),   # the synthetic world's calendar, six years ago
    (dt.date(2020, 9, 18), "2020-09-23"),
])
def test_the_last_partition_is_the_production_week_whatever_the_clock(last_day, production):
    assert production_after(last_day) == production
    first_day = last_day - dt.timedelta(weeks=30)
    nows = [at(TODAY), dt.datetime.now(UTC), at(last_day + dt.timedelta(days=1), 0), at(dt.date(2040, 1, 1)),
            at(first_day, 0)]  # from the day the data begins to long after
    # a code location left loaded while the clock crosses week boundaries (Wednesday 00:00 UTC)
    wednesday = dt.date.fromisoformat(production)
    nows += [dt.datetime.combine(wednesday + dt.timedelta(weeks=w), dt.time(), UTC) + dt.timedelta(seconds=s)
             for w in (0, 1, 2) for s in (-1, 0, 1)]
    for partitions in (target_weeks_for(first_day, last_day), ranking_weeks_for(first_day, last_day)):
        want = last_keys(partitions, at(TODAY))[1]
        assert want[-1] == production and str(dt.date.fromisoformat(want[-2]) + dt.timedelta(weeks=1)) == production
        for now in nows:
            assert last_keys(partitions, now) == (production, want), now


def test_the_schedule_requests_the_production_week():
    from hm_recsys.defs.schedules import build_schedules

    last_day = dt.date(2026, 12, 1)
    schedule, = build_schedules(target_weeks_for(last_day - dt.timedelta(weeks=30), last_day))
    with dg.instance_for_test() as instance:
        # its own tick (Wednesday 06:00, the day after the data ends), today, and a week on with no new data
        for tick in (dt.datetime(2026, 12, 2, 6, tzinfo=UTC), None, dt.datetime(2026, 12, 9, 6, tzinfo=UTC)):
            request = schedule(dg.build_schedule_context(instance=instance, scheduled_execution_time=tick))
            assert (request.partition_key, request.run_key) == ("2026-12-02", "retrain-2026-12-02"), tick


def test_shift_moves_only_dates_by_whole_weeks(tiny_world, tmp_path):
    saturday = dt.date(2026, 12, 5)
    paths = conftest.shifted_copy(tiny_world, tmp_path / "w", saturday)
    for name in ("articles.csv", "customers.csv"):  # no dates there
        assert (paths.raw / name).read_bytes() == (tiny_world.raw / name).read_bytes()
    old = pl.read_csv(tiny_world.raw / "transactions_train.csv", infer_schema=False)
    new = pl.read_csv(paths.raw / "transactions_train.csv", infer_schema=False)
    days = (pl.col("t_dat").str.to_date().max() - pl.col("t_dat").str.to_date().min()).dt.total_days()
    old_first = old["t_dat"].str.to_date().min()
    new_first = new["t_dat"].str.to_date().min()
    assert (new_first - old_first).days % 7 == 0 and new_first.weekday() == old_first.weekday()
    assert new["t_dat"].str.to_date().max() == saturday
    # the same rows in the same order, the three days after the Saturday (Sunday..Tuesday) cut
    assert new.drop("t_dat").equals(old.drop("t_dat").head(new.height))
    assert old.select(days).item() - new.select(days).item() == 3
    assert (paths.raw / "transactions_train.csv").read_text().splitlines()[0] == "t_dat,customer_id,article_id,price,sales_channel_id"


def test_generate_end_date(tmp_path):
    from hm_recsys.cli import main
    from hm_recsys.ingest import read_date_range

    assert main(["generate", "--scale", "tiny", "--images", "no", "--out", str(tmp_path), "--end-date", "2026-12-01"]) == 0
    assert read_date_range(tmp_path / "raw" / "transactions_train.csv")[1] == dt.date(2026, 12, 1)
    with pytest.raises(SystemExit):  # a sale after today would be refused by ingestion: refused here first
        main(["generate", "--scale", "tiny", "--out", str(tmp_path / "x"), "--end-date", str(dt.date.today() + dt.timedelta(days=1))])


def test_automation_builds_the_production_week_of_data_ending_yesterday(tiny_world, tmp_path):
    from hm_recsys.definitions import build_definitions
    from hm_recsys.defs.assets.raw import RAW_ASSETS, raw_version

    production = production_after(YESTERDAY)
    paths = conftest.shifted_copy(tiny_world, tmp_path / "w", YESTERDAY)
    defs = build_definitions(paths)
    graph = defs.resolve_asset_graph()

    def requested(evaluation_time=None) -> dict[str, set]:
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=evaluation_time)
        return {k.to_user_string(): set(result.get_requested_partitions(k)) for k in graph.get_all_asset_keys()
                if result.get_requested_partitions(k)}

    with dg.instance_for_test() as instance:
        for asset in RAW_ASSETS:  # what the launcher and the raw-files sensor record
            instance.report_runless_asset_event(dg.AssetObservation(
                asset_key=asset, tags={"dagster/data_version": raw_version(defs.resources["data"], asset)}))
        assert dg.materialize([*defs.assets], selection=["articles", "customers", "transactions"], instance=instance,
                              resources=defs.resources).success
        wanted = requested()
        for asset in ("history", "popular_all_time", "tfrecords", "als_candidates"):
            assert production in wanted[asset] and max(wanted[asset]) == production, (asset, wanted[asset])
        # the code location stays loaded and the clock moves past the next week boundaries: same weeks
        for days in (1, 4, 8, 15):
            assert requested(dt.datetime.now(UTC) + dt.timedelta(days=days)) == wanted, days
        schedule = defs.get_schedule_def("weekly_retraining")
        data = schedule.evaluate_tick(dg.build_schedule_context(instance=instance, repository_def=defs.get_repository_def()))
        assert [r.partition_key for r in data.run_requests] == [production]


@pytest.mark.slow
def test_predict_on_data_ending_yesterday_writes_the_production_week(backtested, tmp_path):
    """The end-to-end tests' shared world ends yesterday (conftest): its production week is next week's."""
    paths = conftest.copy_world(backtested[0], tmp_path / "data")  # the shared backtest stays as built
    production = production_after(YESTERDAY)
    out = cli(paths, "predict", "--config", FAST)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    assert f"production week {production}:" in out.stdout
    lines = paths.submission(production, "final").read_text().splitlines()
    assert lines[0] == "customer_id,prediction"
    customers = pl.read_csv(paths.raw / "customers.csv", columns=["customer_id"])["customer_id"].to_list()
    articles = set(pl.read_csv(paths.raw / "articles.csv", columns=["article_id"],
                               schema_overrides={"article_id": pl.String})["article_id"])
    rows = [line.split(",") for line in lines[1:]]
    assert sorted(r[0] for r in rows) == sorted(customers) and all(len(r) == 2 for r in rows)
    for _, prediction in rows:
        ids = prediction.split(" ")
        assert len(ids) == 12 and all(len(a) == 10 and a in articles for a in ids), prediction
    assert max(p.name for p in (paths.root / "submissions").iterdir()) == production  # nothing past it
