"""The online API: ``hm-recsys serve`` (uvicorn) over a data folder's serving snapshots.

- ``GET /recommendations/{customer_id}?n=12&age=`` -> the customer's articles in order, the week, the
  snapshot version and ``source``: ``personal`` (the week's final.csv) or ``fallback`` (an id the week does
  not know: its age group's popular list when ``age`` is given, else the overall one; ``fallback`` names it).
  A malformed id (not 64 lowercase hex characters, and not a known id either) is a 422; ``n`` outside
  1..12 too. No snapshot loaded yet: 503 naming what to build.
- ``GET /health``: 200 once a snapshot is loaded, 503 before; either way the last refused snapshot and why.
- ``GET /version``: the loaded snapshot's week, version, manifest and load time.
- ``GET /page`` (``/`` redirects there), ``/page/data``, ``/page/random``, ``/images/...``: the merchandiser's
  page over the same snapshot, its data read lazily per request from the data folder (``page.py``).

A background thread reads ``<data>/serving/current`` every ``poll_s`` seconds (0.2: a read of a few bytes,
so at most 0.2 s pass before a switch starts); when it names another snapshot, the thread loads and
validates it (``load_snapshot``: ~0.25 s at 1.37M customers on an idle machine) and then replaces the one
reference every request reads (``SnapshotHolder.snapshot``). A request reads that reference once and
answers from that object alone, so an answer never mixes two snapshots, and a request in flight during a
switch finishes on the old one (its arrays stay mapped while referenced). A snapshot that fails validation
is refused: the previous one keeps serving, the reason is logged and shown by ``/health``; it is tried
again when ``current`` changes or ``retry_s`` later.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from pathlib import Path

from fastapi import FastAPI, HTTPException, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from hm_recsys.schema import CUSTOMER_ID_LENGTH
from hm_recsys.serving.page import PageInputError, PageReader, parse_age, render_page, resolve_image
from hm_recsys.serving.snapshot import K, Snapshot, SnapshotError, load_snapshot, read_pointer

log = logging.getLogger("hm_recsys.serving")
CUSTOMER_ID = re.compile(rf"[0-9a-f]{{{CUSTOMER_ID_LENGTH}}}")
POLL_S = 0.2  # seconds between reads of ``current``
BUILD_HINT = "build one with `hm-recsys predict` (it materializes the production week's serving_snapshot), or let `make ui` build it"


class SnapshotHolder:
    """The one snapshot reference the requests read, and the poller that replaces it."""

    def __init__(self, root: str | Path, poll_s: float = POLL_S, retry_s: float = 30.0):
        self.root = Path(root)
        self.poll_s, self.retry_s = poll_s, retry_s
        self.snapshot: Snapshot | None = None  # replaced whole, never mutated
        self.refused: dict | None = None  # the last snapshot refused since the current one loaded
        self.switches = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one poll at a time (the thread, or a test calling poll_once)

    def poll_once(self) -> bool:
        """Load the snapshot ``current`` names if it is not the one served; True when it switched."""
        with self._lock:
            pointer = read_pointer(self.root)
            if pointer is None:
                return False
            now = self.snapshot
            if now is not None and pointer == f"{now.week}/{now.version}":
                return False
            r = self.refused
            if r is not None and r["snapshot"] == pointer and time.time() - r["at"] < self.retry_s:
                return False
            try:
                snap = load_snapshot(self.root / pointer)
            except SnapshotError as e:
                self.refused = {"snapshot": pointer, "reason": str(e), "at": time.time()}
                log.error("refused serving snapshot %s: %s%s", pointer, e,
                          f"; still serving {now.week}/{now.version}" if now else "")
                return False
            self.snapshot = snap  # the switch: one reference assignment
            self.refused = None
            self.switches += 1
            log.info("serving snapshot %s/%s (%d customers, validated in %.2f s: %s)", snap.week, snap.version,
                     snap.n_customers, snap.load_seconds, snap.load_phases)
            return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # never let the poller die: the next tick tries again
                log.exception("polling %s failed", self.root)
            self._stop.wait(self.poll_s)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="snapshot-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def not_ready(self) -> dict:
        why = f"no serving snapshot published under {self.root} yet" if read_pointer(self.root) is None \
            else "no valid serving snapshot loaded yet"
        return {"detail": f"{why}: {BUILD_HINT}", "refused": self.refused}


def _describe(snap: Snapshot) -> dict:
    return {"week": snap.week, "version": snap.version, "customers": snap.n_customers,
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(snap.loaded_at)),
            "load_seconds": round(snap.load_seconds, 3), "load_phases": snap.load_phases, "path": str(snap.path)}


def create_app(root: str | Path, *, poll_s: float = POLL_S, retry_s: float = 30.0, poll: bool = True,
               data_root: str | Path | None = None) -> FastAPI:
    """The API over ``root`` (``<data>/serving``). ``poll``: start the background poller with the app
    (tests may drive ``app.state.holder.poll_once()`` themselves instead). ``data_root``: the data folder
    the page reads tables, candidates and images from (default: ``root``'s parent)."""
    holder = SnapshotHolder(root, poll_s=poll_s, retry_s=retry_s)
    reader = PageReader(Path(root).parent if data_root is None else data_root)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if poll:
            holder.start()
        try:
            yield
        finally:
            holder.stop()

    app = FastAPI(title="hm_recsys recommendations", lifespan=lifespan,
                  description="The production week's 12 articles per customer, from the serving snapshot Dagster publishes.")
    app.state.holder = holder
    app.state.page = reader

    def unavailable() -> JSONResponse:
        return JSONResponse(holder.not_ready(), status_code=503)

    @app.get("/recommendations/{customer_id}")
    async def recommendations(
        customer_id: str = PathParam(..., max_length=256, description="customer_id as in customers.csv (64 lowercase hex)"),
        n: int = Query(K, ge=1, le=K, description="how many articles (1..12)"),
        age: int | None = Query(None, ge=0, le=150, description="for a customer the week does not know: their age picks the fallback list"),
    ):
        snap = holder.snapshot  # read once: the whole answer comes from this object
        if snap is None:
            return unavailable()
        rec = snap.recommend(customer_id, n, age)
        if rec.source == "fallback" and CUSTOMER_ID.fullmatch(customer_id) is None:
            raise HTTPException(422, detail=f"malformed customer_id {customer_id[:80]!r}: "
                                            f"expected {CUSTOMER_ID_LENGTH} lowercase hex characters")
        return {"customer_id": customer_id, "articles": rec.articles, "week": rec.week, "version": rec.version,
                "source": rec.source, "fallback": rec.fallback}

    @app.get("/health")
    async def health():
        snap = holder.snapshot
        if snap is None:
            return JSONResponse({"status": "not_ready", **holder.not_ready()}, status_code=503)
        return {"status": "ready", **_describe(snap), "refused": holder.refused}

    @app.get("/version")
    async def version():
        snap = holder.snapshot
        if snap is None:
            return unavailable()
        return {**_describe(snap), "manifest": snap.manifest}

    # The page's handlers are plain functions: Starlette runs them in its thread pool, so their file reads
    # never hold up the event loop that answers /recommendations.

    def page_view(customer_id: str | None, age: str | None) -> tuple[Snapshot | None, dict | None, str | None, int]:
        snap = holder.snapshot  # read once: the whole page comes from this object (and its week)
        if snap is None:
            return None, None, holder.not_ready()["detail"], 503
        if not customer_id:
            return snap, None, None, 200
        try:
            return snap, reader.view(snap, customer_id.strip(), parse_age(age)), None, 200
        except PageInputError as e:
            return snap, None, str(e), 422
        except TimeoutError as e:
            return snap, None, f"the page is busy, try again: {e}", 503

    @app.get("/", include_in_schema=False)
    def index():
        return RedirectResponse("/page", status_code=307)

    @app.get("/page", response_class=HTMLResponse, summary="the merchandiser's page: a customer's purchases and recommendations")
    def page(customer_id: str | None = Query(None, description="customer_id (64 lowercase hex)"),
             age: str | None = Query(None, description="for an id the week does not know: picks the fallback list")):
        snap, view, error, status = page_view(customer_id, age)
        body = render_page(snap=snap, view=view, customer_id=customer_id or "", age=age or "", error=error)
        return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})

    @app.get("/page/data", summary="what /page shows, as JSON")
    def page_data(customer_id: str = Query(..., description="customer_id (64 lowercase hex)"),
                  age: str | None = Query(None)):
        snap, view, error, status = page_view(customer_id, age)
        return view if error is None else JSONResponse({"detail": error}, status_code=status)

    @app.get("/page/random", summary="redirect to the page of a random customer of the served snapshot")
    def page_random():
        snap = holder.snapshot
        customer_id = None if snap is None else reader.random_customer(snap)
        if customer_id is None:
            body = render_page(snap=snap, error=holder.not_ready()["detail"] if snap is None else "the snapshot has no customer")
            return HTMLResponse(body, status_code=503)
        return RedirectResponse(f"/page?customer_id={customer_id}", status_code=303)

    @app.get("/images/{rel:path}", include_in_schema=False)
    def image(rel: str):
        path = resolve_image(reader.paths.images, rel)
        if path is None:
            return Response("not found", status_code=404, media_type="text/plain")
        return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"})

    return app
