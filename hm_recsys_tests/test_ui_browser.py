"""A real browser drives the Dagster UI that ``hm-recsys ui`` serves: lineage graph, one partition, a 2-week backfill.

Needs Playwright for Python and a Chromium binary; Playwright cannot download its own browser here, so
it drives Debian's ``chromium`` (``apt-get install -y chromium``; ``pip install playwright``). Both are
required: the test fails, not skips, when either is missing. ``HM_CHROMIUM`` overrides the binary.

Automation is switched off first, so what runs is what the browser launched. ``hm-recsys ui`` starts
the ``rebuild_*`` automation sensors, the ``raw_files`` sensor and the ``weekly_retraining``
schedule by default (``DefaultSensorStatus.RUNNING``), and the daemon ticks the automation sensor as
soon as it starts, which would race any attempt to stop it from the UI. Instead, before the UI starts,
Dagster's own CLI (``dagster sensor stop`` / ``dagster schedule stop`` over the same workspace and the
data folder's instance) records them as stopped; a stored STOPPED state overrides the code's default,
so the daemon never ticks them. The test then checks over GraphQL that they are stopped and no run
exists before it clicks anything.

In the browser: the global lineage page (groups expanded, vertical, zoomed out) must show ``articles``,
``transactions`` and ``final``; the tables ``articles``, ``customers`` and ``transactions`` are
materialized from their asset pages, then ``history`` (the per-week input of every weekly asset) for
the three weeks used, as a backfill; then one partition of ``popular_all_time`` (the newest labelled
week) and a backfill of two weeks of ``popular_last_week``, each through the asset's Materialize dialog.
Each must succeed (GraphQL status, the run / backfill page saying so, the submission files on disk).
Last, the lineage page with the built assets marked is saved as ``lineage.png`` in the test's tmp
folder (``HM_UPDATE_DOCS=1`` also copies it to ``docs/lineage.png``, the README's picture). On failure
the page's screenshot, the runs with their errors and the server's log tail are in the pytest tmp
folder and the output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from hm_recsys_tests.services import free_port

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHROMIUM = os.environ.get("HM_CHROMIUM", "/usr/bin/chromium")
INSTALL_HINT = "apt-get install -y chromium && pip install playwright"
STARTUP_S = 240  # dagster dev: webserver, daemon and a code server on a busy 2-core machine
RUN_S = 600      # a queued run on the tiny world: seconds of work, but run workers start slowly
AUTOMATION = [*((("sensor", f"rebuild_{stage}") for stage in ("tables", "week", "features", "ranking"))),
              ("sensor", "raw_files"),
              ("schedule", "weekly_retraining")]
TERMINAL_RUN = {"SUCCESS", "FAILURE", "CANCELED"}
TERMINAL_BACKFILL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


class GraphQL:
    def __init__(self, port: int):
        self.url = f"http://127.0.0.1:{port}/graphql"

    def __call__(self, query: str, **variables) -> dict:
        body = json.dumps({"query": query, "variables": variables}).encode()
        req = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            out = json.load(resp)
        if out.get("errors"):
            raise RuntimeError(f"GraphQL errors: {out['errors']}")
        return out["data"]

    def runs(self) -> list[dict]:
        return self("""{ runsOrError(limit: 50) { ... on Runs { results {
            runId status jobName tags { key value } } } } }""")["runsOrError"]["results"]

    def run_status(self, run_id: str) -> str:
        return self("""query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }""",
                    id=run_id)["runOrError"]["status"]

    def backfill(self, backfill_id: str) -> dict:
        return self("""query($id: String!) { partitionBackfillOrError(backfillId: $id) {
            ... on PartitionBackfill { status numPartitions partitionNames runs(limit: 20) { runId status } } } }""",
                    id=backfill_id)["partitionBackfillOrError"]

    def failures(self) -> str:
        """Every run's status, and the error message of the runs that failed: for the failure output."""
        lines = []
        for run in self.runs():
            tags = {t["key"]: t["value"] for t in run["tags"]}
            lines.append(f"  run {run['runId'][:8]} {run['status']} {run['jobName']} "
                         f"partition={tags.get('dagster/partition')} backfill={tags.get('dagster/backfill')}")
            if run["status"] == "FAILURE":
                events = self("""query($id: ID!) { logsForRun(runId: $id, limit: 500) { ... on EventConnection {
                    events { __typename ... on MessageEvent { message } ... on ErrorEvent { error { message } } } } } }""",
                              id=run["runId"])["logsForRun"].get("events", [])
                for e in events:
                    if e.get("error"):
                        lines.append(f"    {e['__typename']}: {e['error']['message'].strip()[:600]}")
        return "\n".join(lines)


def _wait(what: str, probe, done, timeout: float, every: float = 2.0):
    deadline = time.time() + timeout
    while True:
        value = probe()
        if done(value):
            return value
        if time.time() > deadline:
            raise AssertionError(f"{what}: still {value!r} after {timeout:.0f}s")
        time.sleep(every)


def _tail(path: Path, n: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else "(no log)"


def _stop_automation(env: dict, log: Path) -> None:
    """Record the sensors and the schedule as stopped in the instance before the daemon can tick them."""
    with log.open("a") as out:
        for kind, name in AUTOMATION:
            cmd = [str(BIN / "dagster"), kind, "stop", name, "-w", "workspace.yaml"]
            done = subprocess.run(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=300)
            assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{_tail(log)}"


@pytest.fixture
def ui(tiny_world, tmp_path):
    """``hm-recsys ui`` over a fresh data folder holding a copy of the tiny world's raw files, automation off."""
    from hm_recsys.defs.client import embedded_home
    from hm_recsys.paths import DataPaths

    paths = DataPaths(tmp_path / "data")
    shutil.copytree(tiny_world.raw, paths.raw)
    # the embedded default instance, as `hm-recsys ui` uses it
    env = {**os.environ, "HM_DATA_DIR": str(paths.root), "DAGSTER_HOME": str(embedded_home(paths))}
    log = tmp_path / "ui.log"
    _stop_automation(env, log)

    port = free_port()
    with log.open("a") as out:
        proc = subprocess.Popen([str(BIN / "hm-recsys"), "ui", "--data-dir", str(paths.root), "--port", str(port)],
                                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    gql = GraphQL(port)
    try:
        deadline = time.time() + STARTUP_S
        while True:
            try:
                gql("{ version }")
                break
            except Exception:
                if proc.poll() is not None:
                    pytest.fail(f"hm-recsys ui exited with {proc.returncode} before serving:\n{_tail(log)}")
                if time.time() > deadline:
                    pytest.fail(f"hm-recsys ui did not answer on port {port} within {STARTUP_S}s:\n{_tail(log)}")
                time.sleep(1)
        yield {"url": f"http://127.0.0.1:{port}", "gql": gql, "paths": paths, "log": log, "tmp": tmp_path}
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _import_playwright():
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as e:
        pytest.fail(f"Playwright for Python is required for the browser test ({e}); install: {INSTALL_HINT}")
    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (set HM_CHROMIUM or install: {INSTALL_HINT})"
    return sync_playwright, expect


def _weeks(paths) -> list[str]:
    from hm_recsys.defs.partitions import data_date_range, target_weeks_for

    return target_weeks_for(*data_date_range(paths.raw)).get_partition_keys()


def test_browser_lineage_partition_and_backfill(ui):
    sync_playwright, expect = _import_playwright()
    gql, base, paths, tmp = ui["gql"], ui["url"], ui["paths"], ui["tmp"]

    # Automation is off and nothing ran: what follows is only what the browser launches.
    states = gql("""{ repositoryOrError(repositorySelector: {repositoryLocationName: "hm_recsys", repositoryName: "__repository__"}) {
        ... on Repository { sensors { name sensorState { status } } schedules { name scheduleState { status } } } } }""")
    repo = states["repositoryOrError"]
    running = [s["name"] for s in repo["sensors"] if s["sensorState"]["status"] != "STOPPED"]
    running += [s["name"] for s in repo["schedules"] if s["scheduleState"]["status"] != "STOPPED"]
    assert not running, f"automation still on: {running}"
    assert gql.runs() == [], "runs exist before the browser launched any"

    weeks = _weeks(paths)
    single = weeks[-2]  # the newest labelled week
    first, second = weeks[-4], weeks[-3]
    console: list[str] = []

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1800, "height": 1100})
        page.set_default_timeout(60_000)
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
        # A fresh instance greets its first visitor with a newsletter dialog; skip it whenever it shows.
        page.add_locator_handler(page.get_by_text("Join the Dagster community"),
                                 lambda: page.get_by_role("button", name="Skip").click())

        def button(text: str):
            """A button by its visible text (an icon's aria-label is part of the accessible name)."""
            return page.get_by_role("button").filter(has_text=re.compile(rf"^{text}"))

        def icon_button(icon: str):
            """An icon-only button; the last one, as the graph's toolbar comes after the navigation's."""
            return page.locator("button", has=page.get_by_role("img", name=icon, exact=True)).last

        def graph_menu(item: str, already: str):
            """Pick ``item`` in the graph's settings menu unless it offers ``already`` (the browser remembers)."""
            icon_button("settings").click()
            wanted = page.get_by_role("menuitem", name=re.compile(re.escape(item)))
            expect(wanted.or_(page.get_by_role("menuitem", name=re.compile(re.escape(already))))).to_be_visible()
            if wanted.count():
                wanted.click()
            page.keyboard.press("Escape")
            page.wait_for_timeout(1500)

        def toast(pattern: str) -> str:
            found = page.get_by_text(re.compile(pattern)).first
            expect(found).to_be_visible(timeout=60_000)
            return re.search(pattern, found.inner_text()).group(1)

        def materialize_dialog(asset: str, selection: str, launch: str):
            page.goto(f"{base}/assets/{asset}")
            button("Materialize").click()
            dialog = page.get_by_role("dialog")
            expect(dialog.get_by_text(f"Launch runs to materialize {asset}")).to_be_visible()
            field = dialog.get_by_placeholder(re.compile(r"^ex: "))
            field.fill(selection)
            field.press("Enter")
            go = dialog.get_by_role("button").filter(has_text=re.compile(rf"^{launch}$"))
            expect(go).to_be_enabled()
            go.click()

        def run_succeeded(run_id: str, what: str):
            status = _wait(f"{what} (run {run_id[:8]})", lambda: gql.run_status(run_id), TERMINAL_RUN.__contains__, RUN_S)
            assert status == "SUCCESS", f"{what}: run {run_id[:8]} ended {status}"
            page.goto(f"{base}/runs/{run_id}")
            expect(page.get_by_text("Success", exact=True).first).to_be_visible()

        def backfill_succeeded(backfill_id: str, partitions: list[str]):
            done = _wait(f"backfill {backfill_id}", lambda: gql.backfill(backfill_id),
                         lambda b: b["status"] in TERMINAL_BACKFILL, RUN_S, every=3)
            assert done["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), f"backfill {backfill_id}: {done}"
            assert sorted(done["partitionNames"]) == sorted(partitions), done
            assert len(done["runs"]) == len(partitions) and {r["status"] for r in done["runs"]} == {"SUCCESS"}, done
            page.goto(f"{base}/runs/b/{backfill_id}")
            expect(page.get_by_text("Succeeded", exact=True).first).to_be_visible()

        def run_id_for(short: str) -> str:
            ids = [r["runId"] for r in gql.runs() if r["runId"].startswith(short)]
            assert len(ids) == 1, f"run {short} not found once among {[r['runId'] for r in gql.runs()]}"
            return ids[0]

        def show_lineage():
            """The global lineage: every group expanded, top to bottom, zoomed to fit the whole viewport."""
            page.goto(f"{base}/asset-groups")
            expect(page.get_by_text("Global asset lineage")).to_be_visible()
            expect(button("Materialize all")).to_be_visible()
            hide_tree = icon_button("panel_show_right")  # the asset tree beside the graph
            if hide_tree.count():
                hide_tree.click()
            hide_nav = page.get_by_role("button", name="Hide navigation")
            if hide_nav.is_visible():
                hide_nav.click()
            graph_menu("Expand all groups", already="Collapse all groups")
            graph_menu("Change graph to vertical orientation", already="Change graph to horizontal orientation")
            page.mouse.dblclick(1790, 300)  # empty background: zoom to fit (Dagster caps the zoom-out ...)
            page.wait_for_timeout(1500)
            icon_button("zoom_out").click()  # ... so one step further shows the whole graph
            page.wait_for_timeout(1500)
            for name in ("articles", "transactions", "popular_all_time", "final"):
                expect(page.get_by_text(name, exact=True).first).to_be_visible()

        try:
            # 1. The lineage graph renders (the screenshot is taken at the end, with the runs' results on it).
            show_lineage()

            # 2. The unpartitioned tables, each from its asset page: the inputs of the weekly assets below
            #    (transactions reads the other two). No dialog: the button launches one run.
            launched = {}
            for table in ("articles", "customers"):
                page.goto(f"{base}/assets/{table}")
                button("Materialize").click()
                launched[table] = run_id_for(toast(r"Launched run (\w+)"))
            for table, run_id in launched.items():
                run_succeeded(run_id, table)
            page.goto(f"{base}/assets/transactions")
            button("Materialize").click()
            run_succeeded(run_id_for(toast(r"Launched run (\w+)")), "transactions")

            # 3. history (the per-week view of the transactions every weekly asset reads) for the three
            #    weeks used below, as one backfill, so no launch below warns of a missing upstream.
            materialize_dialog("history", f"[{first}...{single}]", "Launch backfill")
            backfill_succeeded(toast(r"Created backfill (\w+)"), [first, second, single])

            # 4. One partition: the newest labelled week of popular_all_time.
            materialize_dialog("popular_all_time", single, "Launch 1 run")
            run_succeeded(run_id_for(toast(r"Launched run (\w+)")), f"popular_all_time {single}")

            # 5. A two-week backfill of popular_last_week, as a partition range.
            materialize_dialog("popular_last_week", f"[{first}...{second}]", "Launch backfill")
            backfill_succeeded(toast(r"Created backfill (\w+)"), [first, second])

            # 6. The lineage again, the built assets marked, as the README's picture.
            show_lineage()
            shot = tmp / "lineage.png"
            page.screenshot(path=str(shot))
            if os.environ.get("HM_UPDATE_DOCS") == "1":
                (REPO / "docs").mkdir(exist_ok=True)
                shutil.copyfile(shot, REPO / "docs" / "lineage.png")
        except BaseException:
            failure = tmp / "failure.png"
            try:
                page.screenshot(path=str(failure), full_page=True)
                where = page.url
            except Exception as e:  # the page itself may be gone
                where = f"(no screenshot: {e})"
            try:
                runs = gql.failures()
            except Exception as e:
                runs = f"(GraphQL failed: {e})"
            print(f"\nbrowser test failed on {where}; screenshot {failure}\nruns:\n{runs}\n"
                  f"browser console:\n" + "\n".join(console[-30:]) + f"\nhm-recsys ui log tail:\n{_tail(ui['log'])}")
            raise
        finally:
            browser.close()

    # What the runs wrote, and nothing else ran (automation stayed off).
    assert paths.submission(single, "popular_all_time").is_file()
    assert paths.submission(first, "popular_last_week").is_file()
    assert paths.submission(second, "popular_last_week").is_file()
    assert len(gql.runs()) == 3 + 3 + 1 + 2, gql.failures()
