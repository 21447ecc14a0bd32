"""The cluster profile's services for tests, on this machine: PostgreSQL 15, Redis, Celery workers, the daemon.

Each piece is a context manager that starts one process (in its own session), waits until it answers, and
stops exactly that process (its process group) on exit; nothing is found or killed by name. Fixtures at the
bottom wire them together the way deploy/cluster/dagster.yaml expects: one PostgreSQL and one Redis shared by
every process, each Celery worker in its own working directory and HOME, sharing only the database, the
broker and the data root.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from hm_recsys.defs.client import free_port

REPO = Path(__file__).resolve().parents[1]
CLUSTER_YAML = REPO / "deploy" / "cluster" / "dagster.yaml"
VENV_BIN = Path(sys.executable).parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_USER = "postgres"  # initdb refuses root: the server runs as Debian's postgres user


def _wait(check, what: str, proc: subprocess.Popen, timeout: float = 60.0, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with {proc.returncode} before it was ready\n{tail}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of one process group."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(stat.parent.name))
    return found


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    """Stop a process started here with ``start_new_session=True`` and what it started: ``sig`` to its
    process group (whose id is its pid), SIGKILL to whatever of the group is left after ``timeout``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc.poll()
        if not _group_members(proc.pid):
            break
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def _popen(cmd, log: Path, **kw) -> subprocess.Popen:
    fh = open(log, "ab")
    try:
        return subprocess.Popen([str(c) for c in cmd], stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, **kw)
    finally:
        fh.close()


# --- PostgreSQL ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str
    db: str

    @property
    def env(self) -> dict[str, str]:
        """The connection as deploy/cluster/dagster.yaml reads it."""
        return {"HM_PG_HOST": self.host, "HM_PG_PORT": str(self.port), "HM_PG_USER": self.user,
                "HM_PG_PASSWORD": self.password, "HM_PG_DB": self.db}

    def connect(self, db: str | None = None):
        import psycopg2

        return psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                dbname=db or self.db, connect_timeout=3)


@contextlib.contextmanager
def postgres(port: int | None = None, db: str = "dagster") -> Iterator[Postgres]:
    """A throwaway PostgreSQL 15 cluster in a temp folder, listening on 127.0.0.1 only (trust auth: the
    password is what the instance config sends, not checked)."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL 15 binaries missing under {PG_BIN} (apt-get install postgresql-15)")
    port = port or free_port()
    root = Path(tempfile.mkdtemp(prefix="hm-pg-"))
    data, log = root / "data", root / "postgres.log"
    shutil.chown(root, PG_USER, PG_USER)
    as_pg = dict(user=PG_USER, group=PG_USER, extra_groups=[], cwd=root)
    init = subprocess.run([str(PG_BIN / "initdb"), "-D", str(data), "-U", "hm", "--auth=trust", "-E", "UTF8",
                           "--no-sync"], capture_output=True, text=True, **as_pg)
    if init.returncode:
        raise RuntimeError(f"initdb failed: {init.stderr[-2000:]}")
    shutil.chown(log.parent, PG_USER, PG_USER)
    log.touch()
    shutil.chown(log, PG_USER, PG_USER)
    proc = _popen([PG_BIN / "postgres", "-D", data, "-h", "127.0.0.1", "-p", port, "-k", root,
                   "-c", "fsync=off", "-c", "max_connections=200"], log, **as_pg)
    info = Postgres("127.0.0.1", port, "hm", "hm", db)
    try:
        _wait(lambda: info.connect("postgres").close() is None, "postgres", proc, log=log)
        conn = info.connect("postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{db}"')
        conn.close()
        yield info
    finally:
        stop(proc, signal.SIGINT)  # "fast" shutdown
        shutil.rmtree(root, ignore_errors=True)


# --- Redis ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def redis_server(port: int | None = None) -> Iterator[str]:
    """A Redis on 127.0.0.1 without persistence; yields its URL (database 0)."""
    exe = shutil.which("redis-server")
    if not exe:
        pytest.skip("redis-server missing (apt-get install redis-server; `make test` does)")
    port = port or free_port()
    root = Path(tempfile.mkdtemp(prefix="hm-redis-"))
    log = root / "redis.log"
    proc = _popen([exe, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--dir", root],
                  log, cwd=root)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        import redis

        _wait(lambda: redis.Redis.from_url(url, socket_timeout=1).ping(), "redis-server", proc, log=log)
        yield url
    finally:
        stop(proc)
        shutil.rmtree(root, ignore_errors=True)


# --- the cluster's shared settings and its processes ----------------------------------------------------------


@dataclass
class Cluster:
    """What every process of the cluster profile shares: database, broker, data root."""

    pg: Postgres
    broker: str
    data_dir: Path
    storage_dir: Path  # HM_DAGSTER_STORAGE: fs IO manager outputs and compute logs, on the shared filesystem
    procs: list = field(default_factory=list)
    extra_env: dict = field(default_factory=dict)  # the code location's settings (HM_CONFIG, HM_EVAL_WEEKS, ...)

    @property
    def env(self) -> dict[str, str]:
        return {**self.pg.env, "HM_DATA_DIR": str(self.data_dir), "HM_DAGSTER_STORAGE": str(self.storage_dir),
                "HM_EXECUTOR": "celery", "HM_CELERY_BROKER": self.broker, "HM_CELERY_BACKEND": self.broker,
                **self.extra_env}

    def process_env(self, home: Path) -> dict[str, str]:
        """The environment of one process: the shared settings, its own HOME and DAGSTER_HOME (a copy of the
        cluster dagster.yaml: the Celery CLI writes its broker config module under DAGSTER_HOME)."""
        dagster_home = home / "dagster_home"
        dagster_home.mkdir(parents=True, exist_ok=True)
        shutil.copy(CLUSTER_YAML, dagster_home / "dagster.yaml")
        keep = {k: os.environ[k] for k in ("LANG", "LC_ALL", "TZ", "TMPDIR") if k in os.environ}
        return {**keep, **self.env, "HOME": str(home), "DAGSTER_HOME": str(dagster_home),
                "PATH": f"{VENV_BIN}{os.pathsep}/usr/local/bin:/usr/bin:/bin", "PYTHONUNBUFFERED": "1",
                "PYTHONWARNINGS": "ignore"}

    def instance(self, home: Path):
        """A DagsterInstance on the cluster's PostgreSQL (for submitting and inspecting runs here)."""
        import dagster as dg

        env = self.process_env(home)
        with _environ(env):
            return dg.DagsterInstance.from_config(env["DAGSTER_HOME"])


@contextlib.contextmanager
def _environ(values: dict[str, str]):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class CeleryWorker:
    """``dagster-celery worker start`` on one queue, named ``<queue>`` (Celery records ``<queue>@<hostname>``),
    ``concurrency`` tasks at a time, in its own working directory and HOME. ``max_tasks_per_child``: ``None`` lets a
    child run task after task (the code location, polars, torch and TensorFlow imported once per child, not once per
    step: ~10 s a step here); 1 gives every task a fresh child, as docs/operations.md starts the gpu worker on a card
    (TensorFlow and torch keep the card's memory until their process exits). Its config YAML carries the profile's Celery
    settings (``jobs.celery_settings``: late acknowledgement, redelivery of lost tasks) besides the broker.

    Processes: ``proc`` is the ``dagster-celery`` wrapper (its own session), which starts the Celery worker's main
    process (``celery -A dagster_celery.app worker``, ``main_pid``), which forks the pool child executing a task."""

    def __init__(self, cluster: Cluster, queue: str, workdir: Path, concurrency: int = 1,
                 max_tasks_per_child: int | None = 1, timeout: float = 120.0):
        self.cluster, self.queue, self.workdir = cluster, queue, workdir
        self.concurrency, self.max_tasks_per_child, self.timeout = concurrency, max_tasks_per_child, timeout
        self.node = f"{queue}@{socket.gethostname()}"
        self.proc: subprocess.Popen | None = None
        self.log = workdir / "worker.log"

    @property
    def command(self) -> list:
        return [VENV_BIN / "dagster-celery", "worker", "start", "-A", "dagster_celery.app", "-q", self.queue, "--name",
                self.queue, "-y", self.workdir / "celery.yaml", "--", "--concurrency", self.concurrency,
                *(["--max-tasks-per-child", self.max_tasks_per_child] if self.max_tasks_per_child else []),
                "--without-gossip", "--without-mingle"]

    def start(self) -> str:
        """Start it and wait until it answers a ping over the broker; returns its node name."""
        import yaml

        from hm_recsys.defs.jobs import celery_settings

        self.workdir.mkdir(parents=True, exist_ok=True)
        env = self.cluster.process_env(self.workdir / "home")
        config = {"execution": {"config": {"broker": self.cluster.broker, "backend": self.cluster.broker,
                                           "config_source": celery_settings(env)}}}
        (self.workdir / "celery.yaml").write_text(yaml.safe_dump(config))
        self.proc = _popen(self.command, self.log, cwd=self.workdir, env=env)
        self.cluster.procs.append(self.proc)
        from celery import Celery

        app = Celery(broker=self.cluster.broker, backend=self.cluster.broker)
        try:
            _wait(lambda: app.control.ping(destination=[self.node], timeout=1.0), f"celery worker {self.node}",
                  self.proc, timeout=self.timeout, log=self.log)
        finally:
            app.close()
        return self.node

    def stop(self) -> None:
        """Warm shutdown (SIGTERM to its process group: the task in flight finishes first)."""
        if self.proc is not None:
            stop(self.proc, signal.SIGTERM, timeout=60)
            self.proc = None

    @property
    def main_pid(self) -> int | None:
        """The Celery worker's main process (the wrapper's child)."""
        if self.proc is None:
            return None
        for pid in _group_members(self.proc.pid):
            with contextlib.suppress(OSError):
                if _ppid(pid) == self.proc.pid and b"worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
        return None

    def pool_children(self) -> list[int]:
        """The pool processes that execute tasks (children of the main process)."""
        main = self.main_pid
        return [] if main is None else [pid for pid in _group_members(self.proc.pid) if _ppid(pid) == main]


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@contextlib.contextmanager
def celery_worker(cluster: Cluster, queue: str, workdir: Path, concurrency: int = 1,
                  max_tasks_per_child: int = 1, timeout: float = 120.0) -> Iterator[str]:
    """A started ``CeleryWorker``; yields its node name, stops it on exit."""
    worker = CeleryWorker(cluster, queue, workdir, concurrency, max_tasks_per_child, timeout)
    try:
        yield worker.start()
    finally:
        worker.stop()


DAEMON_COMMAND = [VENV_BIN / "dagster-daemon", "run", "-w", REPO / "workspace.yaml"]


@contextlib.contextmanager
def dagster_daemon(cluster: Cluster, workdir: Path, timeout: float = 180.0) -> Iterator[subprocess.Popen]:
    """``dagster-daemon run -w workspace.yaml`` from the repository root (the workspace's working directory):
    dequeues runs (QueuedRunCoordinator), launches them (MonitoredRunLauncher), monitors and retries them."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = cluster.process_env(workdir / "home")
    log = workdir / "daemon.log"
    proc = _popen(DAEMON_COMMAND, log, cwd=REPO, env=env)
    cluster.procs.append(proc)
    instance = cluster.instance(workdir / "probe")

    def healthy():
        from dagster._daemon.controller import all_daemons_healthy

        return all_daemons_healthy(instance, heartbeat_tolerance_seconds=60)

    try:
        _wait(healthy, "dagster-daemon", proc, timeout=timeout, log=log)
        yield proc
    finally:
        stop(proc, signal.SIGTERM, timeout=60)
        instance.dispose()


_STOP_INSTIGATORS = """
import json, sys
import dagster as dg
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget

stopped = []
with dg.DagsterInstance.get() as instance, WorkspaceProcessContext(instance, WorkspaceFileTarget([sys.argv[1]])) as ctx:
    request = ctx.create_request_context()
    for entry in request.get_code_location_entries().values():
        if entry.code_location is None:
            raise SystemExit(f"code location failed to load: {entry.load_error}")
        for repo in entry.code_location.get_repositories().values():
            for sensor in repo.get_sensors():
                instance.stop_sensor(sensor.get_remote_origin_id(), sensor.selector_id, sensor)
                stopped.append(sensor.name)
            for schedule in repo.get_schedules():
                instance.stop_schedule(schedule.get_remote_origin_id(), schedule.selector_id, schedule)
                stopped.append(schedule.name)
print("STOPPED " + json.dumps(stopped), flush=True)
"""


def stop_instigators(cluster: Cluster, workdir: Path) -> list[str]:
    """Mark every sensor and schedule of the code location stopped on the cluster's instance, before a daemon
    starts: the automation sensors are on by default and would otherwise launch runs of their own beside the
    ones a test submits. Returns their names."""
    workdir.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([sys.executable, "-c", _STOP_INSTIGATORS, str(REPO / "workspace.yaml")], cwd=REPO,
                         env=cluster.process_env(workdir / "home"), capture_output=True, text=True, timeout=300)
    if out.returncode:
        raise RuntimeError(f"stopping sensors/schedules failed: {out.stderr[-3000:]}")
    import json

    found = [line[len("STOPPED "):] for line in out.stdout.splitlines() if line.startswith("STOPPED ")]
    if not found:
        raise RuntimeError(f"stopping sensors/schedules printed nothing: {out.stdout[-2000:]} {out.stderr[-2000:]}")
    return json.loads(found[-1])


@contextlib.contextmanager
def cluster_services(data_dir: Path, workdir: Path, queues=("cpu", "gpu"), automation: bool = False,
                     env: dict[str, str] | None = None, concurrency: dict[str, int] | None = None,
                     max_tasks_per_child: dict[str, int] | None = None) -> Iterator[Cluster]:
    """PostgreSQL + Redis + one Celery worker per queue + the daemon, for one data root. ``automation``:
    leave the sensors and schedules as the code declares them (on), else stop them before the daemon starts.
    ``env``: more settings every process sees (the code location loads the same definitions everywhere).
    ``concurrency``: tasks at a time per queue (default 1). ``max_tasks_per_child``: per queue (default: children
    run task after task, the gpu worker's too: this machine has no card whose memory a child would keep; the steps,
    their routing and their bytes are the same either way, the embedded default runs a run's steps in one process).
    ``cluster.workers``: node names; ``cluster.worker[queue]``: the ``CeleryWorker`` (to stop, kill, restart)."""
    storage = data_dir / "dagster_storage"
    storage.mkdir(parents=True, exist_ok=True)
    with postgres() as pg, redis_server() as broker:
        cluster = Cluster(pg, broker, data_dir, storage, extra_env=dict(env or {}))
        cluster.stopped = [] if automation else stop_instigators(cluster, workdir / "setup")
        cluster.worker = {q: CeleryWorker(cluster, q, workdir / f"worker-{q}", (concurrency or {}).get(q, 1),
                                          max_tasks_per_child=(max_tasks_per_child or {}).get(q))
                          for q in queues}
        with contextlib.ExitStack() as stack:
            for worker in cluster.worker.values():
                stack.callback(worker.stop)
            cluster.workers = [worker.start() for worker in cluster.worker.values()]
            stack.enter_context(dagster_daemon(cluster, workdir / "daemon"))
            yield cluster


# --- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture
def pg_server():
    with postgres() as pg:
        yield pg


@pytest.fixture
def redis_url():
    with redis_server() as url:
        yield url
