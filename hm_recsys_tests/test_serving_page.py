"""The merchandiser's page of the serving API (hm_recsys/serving/page.py): fast tests on the tiny world, no
pipeline run, and one headless-Chromium test of the page as ``hm-recsys serve`` serves it.

The data folder is built the way ``test_serving`` builds snapshots, directly: a few real candidate sources
of the tiny world's production week, their bucketed union (``write_union_buckets``, the pipeline's layout),
a final.csv ranked from it (popular fill), and the snapshot ``build_snapshot`` makes of that final.csv.

The browser test needs Playwright for Python and Debian's ``chromium`` (as ``test_ui_browser``; it fails,
not skips, when either is missing; ``HM_CHROMIUM`` overrides the binary). ``HM_UPDATE_DOCS=1`` also writes
its screenshot of a customer's page to ``docs/img/serving_page.png``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient

from hm_recsys import io
from hm_recsys.defs.client import free_port
from hm_recsys.paths import DataPaths
from hm_recsys.serving import snapshot as S
from hm_recsys.serving.app import create_app
from hm_recsys.serving.page import FILL, PURCHASES, RECENT_DAYS, resolve_image
from hm_recsys.weeks import TargetWeek, week_start
from hm_recsys_tests.test_serving import content, customer_ids

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("HM_CHROMIUM", "/usr/bin/chromium")
SOURCES = ["repurchase", "same_product", "popular", "age_popular"]  # the fast ones: seconds for the whole world


def build_world(tiny_world: DataPaths, tables, root: Path, *, images: bool = True) -> DataPaths:
    """A data folder over the tiny world's tables: candidates/<week>/union, final.csv, a published snapshot;
    raw/images copied (so a test may plant files there) or absent."""
    from hm_recsys.baselines import popular_articles
    from hm_recsys.candidates import run_sources
    from hm_recsys.candidates.union import write_union_buckets
    from hm_recsys.submission import write_submission

    paths = DataPaths(root)
    root.mkdir(parents=True)
    os.symlink(tiny_world.tables, paths.tables)
    if images:
        shutil.copytree(tiny_world.images, paths.images)
    week = TargetWeek(week_start(tables.transactions["t_dat"].max()) + dt.timedelta(days=7))  # the production week
    source_paths = {name: io.write_parquet(frame, paths.week_dir("candidates", week.key) / f"{name}.parquet")
                    for name, frame in run_sources(tables, week, names=SOURCES).items()}
    union_dir = paths.week_dir("candidates", week.key) / "union"
    write_union_buckets(source_paths, union_dir, tables.n_customers, bucket_customers=700)
    ranks = [f"{n}_rank" for n in SOURCES]
    recs = (pl.scan_parquet(union_dir / "*.parquet")
            .sort(["customer_idx", "n_sources", pl.min_horizontal(ranks), "article_idx"], descending=[False, True, False, False])
            .with_columns(rank=pl.int_range(pl.len()).over("customer_idx").cast(pl.Int16))
            .filter(pl.col("rank") < S.K).select("customer_idx", "article_idx", "rank").collect())
    final = paths.submission(week.key, "final")
    write_submission(recs, popular_articles(tables, week), tables, final)
    S.publish(S.serving_root(root), S.build_snapshot(final, tables, week.key))
    return paths


@pytest.fixture(scope="module")
def world(tiny_world, tiny_tables, tmp_path_factory) -> DataPaths:
    return build_world(tiny_world, tiny_tables, tmp_path_factory.mktemp("page") / "data")


@pytest.fixture(scope="module")
def imageless(tiny_world, tiny_tables, tmp_path_factory) -> DataPaths:
    return build_world(tiny_world, tiny_tables, tmp_path_factory.mktemp("page_no_images") / "data", images=False)


def serving(paths: DataPaths) -> TestClient:
    app = create_app(S.serving_root(paths.root), poll=False)
    assert app.state.holder.poll_once()
    return TestClient(app)


def cutoff(client: TestClient) -> dt.date:
    return TargetWeek.from_key(client.app.state.holder.snapshot.week).cutoff


def pick_customers(tables, before: dt.date) -> tuple[str, str]:
    """(a customer with more than 12 purchases before the week, one with 2..6 of them, the newest older
    than the recent window: the page must read the older days for them)."""
    past = tables.transactions.filter(pl.col("t_dat") < before)
    per = past.group_by("customer_idx").agg(n=pl.len(), last=pl.col("t_dat").max()).sort("customer_idx")
    many = per.filter(pl.col("n") > 2 * PURCHASES)["customer_idx"][0]
    old = per.filter(pl.col("n").is_between(2, 6) & (pl.col("last") < before - dt.timedelta(days=RECENT_DAYS)))["customer_idx"][0]
    ids = tables.customers["customer_id"]
    return ids[many], ids[old]


def expected_purchases(tables, customer_id: str, before: dt.date) -> list[tuple[str, str, int]]:
    idx = tables.customers.filter(pl.col("customer_id") == customer_id)["customer_idx"].item()
    return [(str(d), a, n) for d, a, n in (
        tables.transactions.filter((pl.col("customer_idx") == idx) & (pl.col("t_dat") < before))
        .group_by("t_dat", "article_idx").len()
        .join(tables.articles.select("article_idx", "article_id"), on="article_idx")
        .sort(["t_dat", "article_idx"], descending=[True, False]).head(PURCHASES)
        .select("t_dat", "article_id", "len").iter_rows())]


def last_price(tables, article_id: str, before: dt.date) -> float:
    idx = tables.articles.filter(pl.col("article_id") == article_id)["article_idx"].item()
    sold = tables.transactions.filter((pl.col("article_idx") == idx) & (pl.col("t_dat") < before))
    return float(sold.filter(pl.col("t_dat") == sold["t_dat"].max())["price"].mean())


def test_a_customers_page_shows_the_snapshots_articles_with_attributes_prices_and_sources(world, tiny_tables):
    with serving(world) as client:
        snap = client.app.state.holder.snapshot
        before = cutoff(client)
        many, old = pick_customers(tiny_tables, before)
        union = pl.read_parquet(world.week_dir("candidates", snap.week) / "union" / "*.parquet")
        articles = {r["article_id"]: r for r in tiny_tables.articles.iter_rows(named=True)}
        for customer_id in (many, old):
            view = client.get("/page/data", params={"customer_id": customer_id}).json()
            assert (view["source"], view["fallback"], view["week"], view["version"]) == ("personal", None, snap.week, snap.version)
            recs = view["recommendations"]
            assert [t["article_id"] for t in recs] == snap.recommend(customer_id).articles
            row = snap.row(customer_id)
            mine = union.filter(pl.col("customer_idx") == row)
            for t, position in zip(recs, snap.recommendations[row].tolist()):
                a = articles[t["article_id"]]
                assert (t["name"], t["product_type"], t["colour"]) == (a["prod_name"], a["product_type_name"], a["colour_group_name"])
                assert t["price"] == pytest.approx(last_price(tiny_tables, t["article_id"], before), rel=1e-5)
                assert t["image"] == f"/images/{t['article_id'][:3]}/{t['article_id']}.jpg"
                proposed = mine.filter(pl.col("article_idx") == position)
                found = [{"source": n, "rank": proposed[f"{n}_rank"][0] + 1}
                         for n in SOURCES if proposed.height and proposed[f"{n}_rank"][0] is not None]
                want = sorted(found, key=lambda s: (s["rank"], s["source"])) or [{"source": FILL, "rank": None}]
                assert t["sources"] == want, t
            got = [(t["day"], t["article_id"], t["quantity"]) for t in view["purchases"]]
            assert got == expected_purchases(tiny_tables, customer_id, before)  # most recent first, before the week
            assert all(t["price"] > 0 and t["name"] for t in view["purchases"])
        assert len(client.get("/page/data", params={"customer_id": many}).json()["purchases"]) == PURCHASES
        assert len(view["purchase_windows"]) == 2 and 2 <= len(view["purchases"]) <= 6  # `old`: the older days were read
        assert any(s["source"] != FILL for t in recs for s in t["sources"])
        page = client.get("/page", params={"customer_id": many})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        html = page.text
        assert html.count('class="tile rec"') == S.K and html.count('class="tile purchase"') == PURCHASES
        assert 'data-source="personal"' in html and html.count("<img ") == S.K + PURCHASES
        first = client.get("/page/data", params={"customer_id": many}).json()["recommendations"][0]
        assert first["name"] in html and f"{first['price']:.4f}" in html and 'data-source="' + first["sources"][0]["source"] in html


def test_an_unknown_customer_gets_the_fallback_marked_as_such(world):
    with serving(world) as client:
        snap = client.app.state.holder.snapshot
        unknown = "f" * 64
        view = client.get("/page/data", params={"customer_id": unknown}).json()
        assert (view["source"], view["fallback"], view["purchases"]) == ("fallback", "overall", [])
        assert [t["article_id"] for t in view["recommendations"]] == list(snap.fallback[0])
        assert all(t["sources"] == [{"source": "fallback: overall", "rank": None}] for t in view["recommendations"])
        assert all(t["name"] and t["price"] for t in view["recommendations"])
        view = client.get("/page/data", params={"customer_id": unknown, "age": "33"}).json()
        assert (view["source"], view["fallback"]) == ("fallback", "30-34")
        assert [t["article_id"] for t in view["recommendations"]] == list(snap.fallback_for(33)[1])
        html = client.get("/page", params={"customer_id": unknown}).text
        assert 'data-source="fallback"' in html and "fallback: overall" in html and "not in week" in html


BAD_IDS = {"short": "xyz", "upper": "F" * 64, "63": "a" * 63, "65": "a" * 65, "5000": "a" * 5000, "html": "<script>alert(1)</script>",
           "non_ascii": "é" * 64, "path": "../../etc/passwd", "nul": "%00", "spaces": " " * 3 + "z"}


@pytest.mark.parametrize("customer_id", list(BAD_IDS.values()), ids=list(BAD_IDS))
def test_a_malformed_id_is_a_clear_message_never_a_500(world, customer_id):
    with serving(world) as client:
        page = client.get("/page", params={"customer_id": customer_id})
        assert page.status_code == 422 and page.headers["content-type"].startswith("text/html")
        assert "is not a customer id: expected 64 lowercase hexadecimal characters" in page.text
        assert "<script>alert" not in page.text  # shown escaped
        data = client.get("/page/data", params={"customer_id": customer_id})
        assert data.status_code == 422 and "is not a customer id" in data.json()["detail"]


def test_bad_ages_and_no_customer(world):
    with serving(world) as client:
        cid = customer_ids_of(client)[0]
        for age in ("abc", "-1", "151", "1e3", "3.5"):
            page = client.get("/page", params={"customer_id": "f" * 64, "age": age})
            assert page.status_code == 422 and "age" in page.text, age
        assert client.get("/page", params={"customer_id": cid, "age": ""}).status_code == 200
        landing = client.get("/page")
        assert landing.status_code == 200 and "Random customer" in landing.text and 'class="tile' not in landing.text
        assert client.get("/", follow_redirects=False).headers["location"] == "/page"


def customer_ids_of(client: TestClient) -> list[str]:
    return [i.decode() for i in client.app.state.holder.snapshot.customer_ids[:5].tolist()]


def test_random_customer_is_one_the_snapshot_serves(world):
    with serving(world) as client:
        snap = client.app.state.holder.snapshot
        seen = set()
        for _ in range(5):
            r = client.get("/page/random", follow_redirects=False)
            assert r.status_code == 303
            customer_id = re.fullmatch(r"/page\?customer_id=([0-9a-f]{64})", r.headers["location"]).group(1)
            assert snap.row(customer_id) is not None
            seen.add(customer_id)
        assert len(seen) > 1
        page = client.get("/page/random")  # followed
        assert page.status_code == 200 and 'data-source="personal"' in page.text


def test_images_route_serves_only_files_inside_the_images_folder(world, tmp_path):
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"not for you")
    (world.images / "099").mkdir()
    (world.images / "099" / "0990000001.jpg").symlink_to(secret)  # a link out of the folder
    (world.images / "099" / "0990000002.jpg").mkdir()  # not a file
    article_id = sorted(p.stem for p in (world.images).glob("*/*.jpg") if not p.is_symlink())[0]
    with serving(world) as client:
        r = client.get(f"/images/{article_id[:3]}/{article_id}.jpg")
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert r.content == (world.images / article_id[:3] / f"{article_id}.jpg").read_bytes()
        for bad in ["/images/099/0990000001.jpg", "/images/099/0990000002.jpg", "/images/099/0999999999.jpg",
                    f"/images/{article_id[:3]}/{article_id}.png", f"/images/123/{article_id}.jpg", f"/images/{article_id}.jpg",
                    f"/images/{article_id[:3]}/{article_id}.jpg/", f"/images/{article_id[:3]}/{article_id}.jpg%00",
                    "/images/%2e%2e/%2e%2e/tables/articles.parquet", "/images/..%2F..%2Ftables%2Farticles.parquet",
                    f"/images/{article_id[:3]}/..%2F{article_id[:3]}%2F{article_id}.jpg", "/images/", "/images/%2Fetc%2Fpasswd"]:
            r = client.get(bad)
            assert r.status_code == 404 and b"not for you" not in r.content, bad
    for rel in ("../../etc/passwd", "/etc/passwd", f"{article_id[:3]}/../{article_id[:3]}/{article_id}.jpg", "099/0990000001.jpg"):
        assert resolve_image(world.images, rel) is None, rel
    assert resolve_image(world.images, f"{article_id[:3]}/{article_id}.jpg") is not None
    assert resolve_image(world.root / "no_such_folder", f"{article_id[:3]}/{article_id}.jpg") is None


def test_a_world_without_images_shows_placeholders(imageless, tiny_tables):
    with serving(imageless) as client:
        many, _ = pick_customers(tiny_tables, cutoff(client))
        view = client.get("/page/data", params={"customer_id": many}).json()
        assert all(t["image"] is None for t in view["recommendations"] + view["purchases"])
        assert any("no article images" in n for n in view["notes"])
        html = client.get("/page", params={"customer_id": many}).text
        assert "<img " not in html and html.count('<div class="placeholder">') == S.K + PURCHASES
        t = view["recommendations"][0]
        assert f"<b>{t['product_type']}</b><span>{t['colour']}</span>" in html
        assert client.get(f"/images/{t['article_id'][:3]}/{t['article_id']}.jpg").status_code == 404


def test_missing_or_mismatched_tables_and_candidates_leave_parts_out_with_a_note(tmp_path, tiny_world):
    """A snapshot whose data folder has no tables or no union (test_serving's synthetic snapshot), or whose
    ids the tables do not hold (re-ingested since): the page still answers, saying what it left out."""
    c = content(1)
    cid = customer_ids(c)[3]
    bare = tmp_path / "bare"
    S.publish(S.serving_root(bare), c)
    mismatched = tmp_path / "mismatched"
    S.publish(S.serving_root(mismatched), c)
    os.symlink(tiny_world.tables, mismatched / "tables")
    for root in (bare, mismatched):
        with serving(DataPaths(root)) as client:
            page = client.get("/page", params={"customer_id": cid})
            assert page.status_code == 200 and page.text.count('class="tile rec"') == S.K
            view = client.get("/page/data", params={"customer_id": cid}).json()
            assert [t["article_id"] for t in view["recommendations"]] == client.app.state.holder.snapshot.recommend(cid).articles
            assert all(t["name"] is None and t["sources"] is None and t["image"] is None for t in view["recommendations"])
            assert view["purchases"] == [] and "sources unknown" in page.text
            notes = " ".join(view["notes"])
            assert f"candidate sources (candidates/{c.week}/union) unavailable" in notes
            assert ("no typed tables" in notes) == (root == bare)
            assert ("re-ingested" in notes) == (root == mismatched)


def test_every_page_comes_from_the_snapshot_being_served(world, tiny_tables, tmp_path):
    """After a switch to the next week's snapshot, the page answers from it: its week, version, cutoff and
    candidate folder (that week has no union: noted), never the previous week's."""
    root = DataPaths(tmp_path / "data")
    shutil.copytree(world.root / "serving", root.root / "serving")
    os.symlink(world.tables, root.tables)
    os.symlink(world.root / "candidates", root.root / "candidates")
    with serving(root) as client:
        holder = client.app.state.holder
        old = holder.snapshot
        many, _ = pick_customers(tiny_tables, cutoff(client))
        before = client.get("/page/data", params={"customer_id": many}).json()
        no_images = ["this world has no article images: tiles show placeholders"]
        assert (before["week"], before["version"], before["notes"]) == (old.week, old.version, no_images)
        nxt = TargetWeek.from_key(old.week).shift(1).key
        final = world.submission(old.week, "final")
        S.publish(root.root / "serving", S.build_snapshot(final, tiny_tables, nxt))
        assert holder.poll_once() and holder.snapshot.week == nxt
        after = client.get("/page/data", params={"customer_id": many}).json()
        assert (after["week"], after["version"], after["purchases_before"]) == (nxt, holder.snapshot.version, nxt)
        assert any(f"candidates/{nxt}/union" in n for n in after["notes"]) and all(t["sources"] is None for t in after["recommendations"])
        assert f"week {nxt}" in client.get("/page", params={"customer_id": many}).text


# ---------------------------------------------------------------------------------------------- browser


def _serve(paths: DataPaths, log: Path) -> tuple[subprocess.Popen, str]:
    """``hm-recsys serve`` on 127.0.0.1 and a free port, in its own process group; returns once /health is 200."""
    port = free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "hm_recsys.cli", "serve", "--data-dir", str(paths.root), "--port", str(port)],
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                if r.status == 200:
                    return proc, base
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            raise AssertionError(f"hm-recsys serve did not come up: {log.read_text()[-3000:]}")
        time.sleep(0.2)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_the_page_in_a_browser(world, imageless, tiny_tables, tmp_path):
    """Search a customer, see 12 recommendations with names and prices and loaded images, pick a random
    customer, a malformed id's message, and placeholders on a world without images."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install playwright (and apt-get install -y chromium)")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or set HM_CHROMIUM)")
    snap = S.load_current(S.serving_root(world.root))
    many, _ = pick_customers(tiny_tables, TargetWeek.from_key(snap.week).cutoff)
    with serving(world) as client:
        want = client.get("/page/data", params={"customer_id": many}).json()["recommendations"]
    servers = [_serve(world, tmp_path / "serve.log"), _serve(imageless, tmp_path / "serve_no_images.log")]
    (_, base), (_, bare) = servers
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.set_default_timeout(20_000)
                page.goto(f"{base}/")
                assert page.url == f"{base}/page"
                page.fill("input[name=customer_id]", many)
                page.click("#search button[type=submit]")
                page.wait_for_selector("#recommendations .tile.rec")
                tiles = page.locator("#recommendations .tile.rec")
                assert tiles.count() == S.K
                assert page.locator("#list-source").inner_text() == "personal"
                assert page.locator("#recommendations .name").all_inner_texts() == [t["name"] for t in want]
                assert page.locator("#recommendations .price").all_inner_texts() == [f"{t['price']:.4f}" for t in want]
                assert page.locator("#purchases .tile.purchase").count() == PURCHASES
                page.wait_for_function("""() => { const imgs = [...document.querySelectorAll('#recommendations img')];
                    return imgs.length === 12 && imgs.slice(0, 6).every(i => i.complete && i.naturalWidth > 0); }""")
                shot = tmp_path / "serving_page.png"
                page.screenshot(path=str(shot), full_page=True)
                if os.environ.get("HM_UPDATE_DOCS") == "1":
                    (REPO / "docs" / "img").mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(shot, REPO / "docs" / "img" / "serving_page.png")

                page.click("#random")
                page.wait_for_url(re.compile(r".*/page\?customer_id=[0-9a-f]{64}$"))
                drawn = page.url.rsplit("=", 1)[1]
                assert snap.row(drawn) is not None and page.locator("#customer").inner_text() == drawn
                assert page.locator("#recommendations .tile.rec").count() == S.K

                page.fill("input[name=customer_id]", "not-an-id")
                page.click("#search button[type=submit]")
                assert "is not a customer id" in page.locator(".error").inner_text()
                assert page.locator(".tile").count() == 0

                page.goto(f"{bare}/page?customer_id={many}")
                assert page.locator("#recommendations .tile.rec").count() == S.K
                assert page.locator("img").count() == 0
                placeholders = page.locator("#recommendations .placeholder")
                assert placeholders.count() == S.K and placeholders.first.is_visible()
                assert placeholders.first.inner_text().split("\n")[0] == want[0]["product_type"]
                assert page.locator("#recommendations .name").all_inner_texts() == [t["name"] for t in want]
            finally:
                browser.close()
    finally:
        for proc, _ in servers:
            _stop(proc)
