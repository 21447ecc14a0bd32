"""defs/sqlite_engines.py: the embedded instance's SQLite storages keep their engines (compiled statements)."""

import subprocess
import sys
from collections import OrderedDict

import dagster as dg

from hm_recsys.defs import sqlite_engines


@dg.asset
def thing():
    return 1


def test_every_statement_of_a_file_reuses_one_engine(tmp_path, monkeypatch):
    created = []
    real = sqlite_engines.create_engine
    monkeypatch.setattr(sqlite_engines, "create_engine", lambda url, **kw: created.append(url) or real(url, **kw))
    monkeypatch.setattr(sqlite_engines, "_ENGINES", OrderedDict())
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        for _ in range(3):
            assert dg.materialize([thing], instance=instance).success
        assert len(instance.get_runs()) == 3 and instance.get_latest_materialization_event(thing.key)
    # hundreds of statements; one engine each for the index, runs, schedules and each run's event-log file
    assert len(created) == len(set(created)) and 4 <= len(created) <= 7, created


def test_only_the_most_recently_used_engines_are_kept(monkeypatch):
    monkeypatch.setattr(sqlite_engines, "KEEP", 2)
    monkeypatch.setattr(sqlite_engines, "_ENGINES", OrderedDict())
    first = sqlite_engines.engine_for("sqlite://")
    sqlite_engines.engine_for("sqlite:///a.db")
    assert sqlite_engines.engine_for("sqlite://") is first  # used again: kept
    sqlite_engines.engine_for("sqlite:///b.db")  # a.db, the least recently used, goes
    assert [k[1] for k in sqlite_engines._ENGINES] == ["sqlite://", "sqlite:///b.db"]


def test_a_process_that_only_opens_the_instance_keeps_engines(tmp_path):
    """The daemon and the webserver never import the code location: the instance's run launcher
    (hm_recsys.defs.run_launcher, named in dagster.yaml) installs the engines there."""
    from hm_recsys.defs.client import REPO_ROOT

    (tmp_path / "dagster.yaml").symlink_to(REPO_ROOT / "dagster.yaml")
    code = ("import dagster as dg; from dagster._core.storage.event_log.sqlite import sqlite_event_log as s; "
            f"i = dg.DagsterInstance.from_config({str(tmp_path)!r}); i.run_launcher; "
            "print(getattr(s.SqliteEventLogStorage._connect, 'keeps_engine', False))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "True"
