"""The Dagster UI (``dagster dev``: webserver + daemon) serves the code location and runs what it is asked to over GraphQL."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ui(tiny_world, tmp_path_factory):
    from hm_recsys.defs.runner import write_instance_config

    home = write_instance_config(tmp_path_factory.mktemp("dagster_home"))
    port = _free_port()
    env = {**os.environ, "HM_DATA_DIR": str(tiny_world.root), "DAGSTER_HOME": str(home)}
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    from dagster_graphql import DagsterGraphQLClient

    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    deadline = time.time() + 180
    while True:
        try:
            client._execute("{ version }")
            break
        except Exception:
            if time.time() > deadline or proc.poll() is not None:
                os.killpg(proc.pid, signal.SIGTERM)
                pytest.fail("dagster dev did not answer within 180 s")
            time.sleep(1)
    yield client
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def test_ui_lists_the_assets_and_launches_a_run(ui, tiny_world):
    nodes = ui._execute("{ assetNodes { assetKey { path } } }")["assetNodes"]
    keys = {"/".join(n["assetKey"]["path"]) for n in nodes}
    assert {"transactions", "evaluation", "repurchase_popular", "two_tower_model", "final"} <= keys

    before = (tiny_world.tables / "transactions.parquet").read_bytes()
    run_id = ui.submit_job_execution("tables_job", run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
    deadline = time.time() + 600
    status = None
    while time.time() < deadline:
        status = ui.get_run_status(run_id).value
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    assert status == "SUCCESS"
    assert (tiny_world.tables / "transactions.parquet").read_bytes() == before  # deterministic re-ingest
