"""The embedded default's SQLite storages keep one SQLAlchemy engine per database file and process.

Dagster's SQLite run, event-log and schedule storages (dagster 1.13) create and dispose an engine for every
statement, so SQLAlchemy compiles every statement again: an automation evaluation of every asset on the
tiny world makes ~870 statements, and that cost a third of its CPU (2.4 -> 1.55 CPU-s per evaluation, one
every few seconds while the daemon runs). The kept engine still opens a new SQLite connection per statement
(``NullPool``, as before); only the compiled statements are reused. Installed when ``hm_recsys.defs`` is
first imported: by the code server and run workers, and by the daemon and the webserver once they load the
instance's run launcher (``defs/run_launcher.py``, named in ``dagster.yaml``).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from contextlib import contextmanager
from threading import Lock

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

# Every run has its own event-log file: a long-lived daemon or webserver reads thousands. The most recently used
# engines are kept (the index, runs and schedules files are used all the time); the others are dropped.
KEEP = 32
_ENGINES: OrderedDict[tuple[int, str, tuple], Engine] = OrderedDict()
_LOCK = Lock()


def engine_for(conn_string: str, **connect_args) -> Engine:
    """One engine per (process, database, connect arguments): a forked child makes its own."""
    key = (os.getpid(), conn_string, tuple(sorted(connect_args.items())))
    with _LOCK:
        if key in _ENGINES:
            _ENGINES.move_to_end(key)
        else:
            _ENGINES[key] = create_engine(conn_string, poolclass=NullPool, connect_args=connect_args)
            while len(_ENGINES) > KEEP:
                _ENGINES.popitem(last=False)
        return _ENGINES[key]


def install() -> None:
    """Replace the three storages' per-statement engines (idempotent)."""
    from dagster._core.storage.event_log.sqlite import sqlite_event_log as events
    from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
    from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage

    if getattr(events.SqliteEventLogStorage._connect, "keeps_engine", False):
        return

    @contextmanager
    def event_connect(self, shard: str):
        with self._db_lock:
            engine = engine_for(self.conn_string_for_shard(shard), timeout=events.SQLITE_BUSY_TIMEOUT_SECONDS)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    @contextmanager
    def connect(self):
        with engine_for(self._conn_string).connect() as conn, conn.begin():
            yield conn

    for function in (event_connect, connect):
        function.keeps_engine = True
    events.SqliteEventLogStorage._connect = event_connect
    SqliteRunStorage.connect = connect
    SqliteScheduleStorage.connect = connect
