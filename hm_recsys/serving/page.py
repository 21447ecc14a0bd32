"""The merchandiser's page over the served snapshot: a customer's last purchases and their 12 articles.

Routes (added to the API by ``app.create_app``; plain server-rendered HTML, no front-end build):

- ``GET /page?customer_id=&age=``: the page. A search box for a customer id (``age`` picks the fallback of
  an id the week does not know, as in the API) and a "Random customer" button. For a customer: the list's
  source (``personal``: the week's final.csv, or ``fallback`` and which list, marked as such), the 12
  articles and the customer's last purchases before the week (most recent first, at most 12), each as a
  tile: image (or a grey placeholder naming the product type and colour when the world has none), name,
  colour, price and, for a recommendation, the candidate source(s) that proposed it with their rank.
  A malformed id is a 422 page that says what an id looks like (never a 500).
- ``GET /page/data?customer_id=&age=``: the same content as JSON (what the page renders).
- ``GET /page/random``: a redirect to the page of a customer drawn from the served snapshot.
- ``GET /images/<3 digits>/<article_id>.jpg``: an article image from ``<data>/raw/images`` (Kaggle layout);
  anything else, a missing file, or a path that resolves outside that folder is a 404.

Every page answers from ONE snapshot (``SnapshotHolder.snapshot`` read once per request): its articles,
list source and week; the week then picks everything else, read lazily per request from the data folder
with Polars scans whose predicates Parquet statistics prune, so the server holds nothing of the tables:

- customer check: ``tables/customers.parquet`` sliced at the snapshot's row (``customer_idx``); an id
  that is not there (tables re-ingested since) is looked up by id instead.
- articles: ``tables/articles.parquet`` filtered to the tiles' ids.
- purchases and prices: ``tables/transactions.parquet`` (sorted by ``t_dat``) filtered to the customer or
  the 12 articles, strictly before the week's cutoff (what the snapshot's models saw), first over the last
  ``RECENT_DAYS`` (row groups of older days are skipped), and over the older days only when the customer
  has fewer than 12 purchases there or an article was not sold there.
- sources: ``candidates/<week>/union`` (the customer-bucketed union, sorted by customer: one row group
  of one bucket file is read): a source proposed an article when its ``<source>_rank`` is set; an article
  of the final list that no source proposed is the ranker's ``popular fill``.

Why lazy reads rather than page data held in memory or added to the snapshot: measured at full size (fake
tables of 1.37M customers, 105,542 articles, 31.8M transactions, a 55-bucket union of 195 candidates per
customer; 2 cores, warm page cache; ``hm-recsys serve``): a page takes 65-90 ms for a customer with 12
purchases in the last 4 weeks, ~230 ms for one with fewer (the older days: one filtered pass over the
transactions' two key columns), ~27 ms for an unknown id; of that, customer check 3-6 ms, articles 4-8 ms,
sources ~25 ms. The server's RSS goes from 249 MiB (snapshot loaded) to ~300 MiB at the first page (Polars'
thread pool and allocator) and stays at 305-310 MiB over 160 pages: nothing grows with the data. Articles
held in memory would cost only 6.3 MiB but save only the 4-8 ms, so they are read like the rest, and the
snapshot format stays as it is. The API's ``/recommendations`` p50/p99 go from 0.85/6 ms to 1.0/16 ms while
two clients load pages back to back on the same 2 cores, and back to 0.75/8 ms after.

At most ``max_concurrent`` page reads run at once (the others wait), so a burst of page loads cannot
take the host's memory or cores from the API, whose handlers stay on the event loop while page
handlers run in the thread pool. A part that cannot be read (no tables, no union for the week, a file
replaced mid-read) leaves that part out with a note on the page, never an error.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import random
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import polars as pl

from hm_recsys import schema
from hm_recsys.paths import DataPaths
from hm_recsys.serving.snapshot import K, Snapshot

log = logging.getLogger("hm_recsys.serving.page")

PURCHASES = 12
RECENT_DAYS = 28
FILL = "popular fill"
ARTICLE_FIELDS = ("article_id", "article_idx", "prod_name", "product_type_name", "colour_group_name",
                  "department_name", "index_group_name")
CUSTOMER_ID = re.compile(rf"[0-9a-f]{{{schema.CUSTOMER_ID_LENGTH}}}")
IMAGE_PATH = re.compile(r"(\d{3})/(\d{3})(\d{7})\.jpg")
BUSY_S = 30.0


class PageInputError(ValueError):
    """Input the page cannot answer (a malformed id or age): the message is shown as is."""


@dataclass(frozen=True)
class Tile:
    article_id: str
    name: str | None
    product_type: str | None
    colour: str | None
    department: str | None
    price: float | None  # recommendations: the last price paid before the week; purchases: the price paid
    image: str | None  # the image route's URL, None when the world has no image for the article
    sources: list[dict] | None = None  # recommendations: [{"source", "rank"}] best rank first; None: unknown
    day: str | None = None  # purchases: the day bought
    quantity: int | None = None  # purchases: rows of that article that day

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


def parse_age(age: str | None) -> int | None:
    if age is None or not age.strip():
        return None
    try:
        value = int(age.strip())
    except ValueError:
        raise PageInputError(f"age {age[:20]!r} is not a whole number of years") from None
    if not 0 <= value <= 150:
        raise PageInputError(f"age {value} is outside 0..150")
    return value


def image_url(article_id: str) -> str:
    return f"/images/{article_id[:3]}/{article_id}.jpg"


def resolve_image(images_dir: Path, rel: str) -> Path | None:
    """The file ``rel`` names under ``images_dir`` when it is ``<3 digits>/<those 3 + 7 digits>.jpg``, exists, and
    resolves (links followed) inside ``images_dir``; else None."""
    m = IMAGE_PATH.fullmatch(rel)
    if m is None or m.group(1) != m.group(2):
        return None
    try:
        base = images_dir.resolve(strict=True)
        path = (images_dir / rel).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not path.is_relative_to(base) or not path.is_file():
        return None
    return path


class PageReader:
    """Reads a page's content from the data folder, lazily, for one snapshot at a time."""

    def __init__(self, data_root: str | Path, max_concurrent: int = 2):
        self.paths = DataPaths(Path(data_root))
        self._gate = threading.BoundedSemaphore(max_concurrent)

    # ------------------------------------------------------------------------------------------ reads

    def _table(self, name: str) -> Path | None:
        p = self.paths.tables / name
        return p if p.is_file() else None

    def _customer_idx(self, snap: Snapshot, customer_id: str, row: int | None, notes: list[str]) -> int | None:
        """The customer's ``customer_idx`` in the tables: the snapshot's row when the tables agree."""
        path = self._table(schema.CUSTOMERS_TABLE)
        if path is None or row is None:
            return row
        got = pl.scan_parquet(path).slice(row, 1).select("customer_id").collect()
        if got.height and got.item() == customer_id:
            return row
        found = pl.scan_parquet(path).filter(pl.col("customer_id") == customer_id).select("customer_idx").collect()
        notes.append("the tables were re-ingested after this snapshot was built: purchases are looked up by customer id")
        return int(found.item()) if found.height else None

    def _articles(self, ids: list[str] | None = None, idx: list[int] | None = None) -> dict:
        """article_id -> attributes (and article_idx -> attributes) for the given ids / indices."""
        path = self._table(schema.ARTICLES_TABLE)
        if path is None or not (ids or idx):
            return {}
        cond = pl.lit(False)
        if ids:
            cond = cond | pl.col("article_id").is_in(pl.Series(ids, dtype=pl.String).implode())
        if idx:
            cond = cond | pl.col("article_idx").is_in(pl.Series(idx, dtype=pl.Int32).implode())
        rows = pl.scan_parquet(path).filter(cond).select(ARTICLE_FIELDS).collect().to_dicts()
        return {**{r["article_id"]: r for r in rows}, **{r["article_idx"]: r for r in rows}}

    def _transactions(self, cutoff: dt.date, customer_idx: int | None, articles: list[int]) -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
        """(the customer's last purchases by day and article, most recent first; each article's last price
        before ``cutoff``; which windows were read)."""
        path = self._table(schema.TRANSACTIONS_TABLE)
        empty = pl.DataFrame(schema={"t_dat": pl.Date, "article_idx": pl.Int32, "price": pl.Float32, "quantity": pl.UInt32})
        if path is None or (customer_idx is None and not articles):
            return empty, empty.drop("quantity"), []
        lf = pl.scan_parquet(path)

        def read(lo: dt.date | None, hi: dt.date, customer: bool, arts: list[int]) -> pl.DataFrame:
            who = pl.lit(False)
            if customer and customer_idx is not None:
                who = who | (pl.col("customer_idx") == customer_idx)
            if arts:
                who = who | pl.col("article_idx").is_in(pl.Series(arts, dtype=pl.Int32).implode())
            when = pl.col("t_dat") < hi
            if lo is not None:
                when = when & (pl.col("t_dat") >= lo)
            return lf.filter(when & who).select("t_dat", "customer_idx", "article_idx", "price").collect()

        recent_from = cutoff - dt.timedelta(days=RECENT_DAYS)
        windows = [f"{recent_from}..{cutoff - dt.timedelta(days=1)}"]
        rows = read(recent_from, cutoff, True, articles)

        def mine(frame: pl.DataFrame) -> pl.DataFrame:
            if customer_idx is None:
                return empty
            return (frame.filter(pl.col("customer_idx") == customer_idx)
                    .group_by("t_dat", "article_idx").agg(pl.col("price").mean(), quantity=pl.len())
                    .sort(["t_dat", "article_idx"], descending=[True, False]))

        def last_price(frame: pl.DataFrame) -> pl.DataFrame:
            arts = pl.Series(articles, dtype=pl.Int32).implode()
            sold = frame.filter(pl.col("article_idx").is_in(arts))
            return (sold.filter(pl.col("t_dat") == pl.col("t_dat").max().over("article_idx"))
                    .group_by("article_idx").agg(pl.col("t_dat").first(), pl.col("price").mean()))

        bought, prices = mine(rows), last_price(rows)
        more_bought = customer_idx is not None and bought.height < PURCHASES
        unpriced = sorted(set(articles) - set(prices["article_idx"].to_list()))
        if more_bought or unpriced:
            windows.append(f"..{recent_from - dt.timedelta(days=1)}")
            older = read(None, recent_from, more_bought, unpriced)
            if more_bought:
                bought = pl.concat([bought, mine(older)])
            if unpriced:
                missing = pl.col("article_idx").is_in(pl.Series(unpriced, dtype=pl.Int32).implode())
                prices = pl.concat([prices, last_price(older.filter(missing))])
        return bought.head(PURCHASES), prices, windows

    def _sources(self, week: str, customer_idx: int) -> dict[int, list[dict]]:
        """article_idx -> [{"source", "rank"}] from the week's candidate union (raises when there is none)."""
        from hm_recsys.buckets import scan_buckets

        lf = scan_buckets(self.paths.week_dir("candidates", week) / "union")
        names = [c[: -len("_rank")] for c in lf.collect_schema().names() if c.endswith("_rank")]
        rows = lf.filter(pl.col("customer_idx") == customer_idx).select("article_idx", *(f"{n}_rank" for n in names)).collect()
        out: dict[int, list[dict]] = {}
        for r in rows.iter_rows(named=True):
            found = [{"source": n, "rank": int(r[f"{n}_rank"]) + 1} for n in names if r[f"{n}_rank"] is not None]
            out[int(r["article_idx"])] = sorted(found, key=lambda s: (s["rank"], s["source"]))
        return out

    # ------------------------------------------------------------------------------------------ the page

    def view(self, snap: Snapshot, customer_id: str, age: int | None = None) -> dict:
        """Everything the page shows for ``customer_id``, from ``snap`` and its week (raises PageInputError
        for a malformed id)."""
        if not self._gate.acquire(timeout=BUSY_S):
            raise TimeoutError(f"more than {BUSY_S:.0f} s waiting for a page read slot")
        try:
            return self._view(snap, customer_id, age)
        finally:
            self._gate.release()

    def _view(self, snap: Snapshot, customer_id: str, age: int | None) -> dict:
        from hm_recsys.weeks import TargetWeek

        t0 = time.perf_counter()
        timings: dict[str, float] = {}

        def lap(name: str, since: float) -> float:
            now = time.perf_counter()
            timings[name] = round((now - since) * 1000, 1)
            return now

        rec = snap.recommend(customer_id, K, age)
        if rec.source == "fallback" and CUSTOMER_ID.fullmatch(customer_id) is None:
            raise PageInputError(f"{customer_id[:80]!r} is not a customer id: expected {schema.CUSTOMER_ID_LENGTH} "
                                 "lowercase hexadecimal characters (0-9, a-f), as in customers.csv")
        row = snap.row(customer_id)
        week = TargetWeek.from_key(snap.week)
        notes: list[str] = []
        t = time.perf_counter()

        def guarded(what: str, fn, default):
            try:
                return fn()
            except Exception as e:  # a missing or replaced file: that part is left out, the page still answers
                log.warning("page: %s unavailable for %s: %s", what, customer_id[:16], e)
                notes.append(f"{what} unavailable: {type(e).__name__}: {str(e)[:200]}")
                return default

        customer_idx = None
        if row is not None:
            customer_idx = guarded("customer lookup", lambda: self._customer_idx(snap, customer_id, row, notes), None)
        t = lap("customer_ms", t)
        attrs = guarded("article attributes", lambda: self._articles(ids=rec.articles), {})
        t = lap("articles_ms", t)
        rec_idx = [attrs[a]["article_idx"] for a in rec.articles if a in attrs]
        bought, prices, windows = guarded("purchases", lambda: self._transactions(week.cutoff, customer_idx, rec_idx), (None, None, []))
        t = lap("transactions_ms", t)
        sources = None
        if rec.source == "personal":
            sources = guarded(f"candidate sources (candidates/{snap.week}/union)", lambda: self._sources(snap.week, row), None)
        t = lap("sources_ms", t)
        missing = [] if bought is None else [a for a in bought["article_idx"].to_list() if a not in attrs]
        if missing:
            attrs |= guarded("article attributes", lambda: self._articles(idx=missing), {})
        lap("purchase_articles_ms", t)

        images = self.paths.images
        has_images = images.is_dir()
        price_of = {} if prices is None else dict(zip(prices["article_idx"].to_list(), prices["price"].to_list()))

        def tile(article_id: str, a: dict | None, **extra) -> Tile:
            has = has_images and (images / article_id[:3] / f"{article_id}.jpg").is_file()
            return Tile(article_id, a and a["prod_name"], a and a["product_type_name"], a and a["colour_group_name"],
                        a and a["department_name"], image=image_url(article_id) if has else None, **extra)

        positions = snap.recommendations[row, :K].tolist() if row is not None else [None] * len(rec.articles)
        recs = []
        for article_id, pos in zip(rec.articles, positions):
            a = attrs.get(article_id)
            price = price_of.get(a["article_idx"]) if a else None
            if rec.source == "fallback":
                src = [{"source": f"fallback: {rec.fallback}", "rank": None}]
            elif sources is None:
                src = None
            else:
                src = sources.get(pos) or [{"source": FILL, "rank": None}]
            recs.append(tile(article_id, a, price=None if price is None else float(price), sources=src))
        purchases = []
        if bought is not None:
            for r in bought.iter_rows(named=True):
                a = attrs.get(r["article_idx"])
                article_id = a["article_id"] if a else f"article_idx {r['article_idx']}"
                purchases.append(tile(article_id, a, price=float(r["price"]), day=str(r["t_dat"]),
                                      quantity=int(r["quantity"])))
        if not self.paths.tables.is_dir():
            notes.append(f"no typed tables under {self.paths.tables}: names, prices and purchases unavailable")
        if not has_images:
            notes.append("this world has no article images: tiles show placeholders")
        if rec.source == "fallback":
            notes.append(f"customer not in week {snap.week}'s recommendations: the {rec.fallback} popular list is shown"
                         + ("" if age is not None else " (give an age to get an age group's list)"))
        timings["total_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        return {"customer_id": customer_id, "week": snap.week, "version": snap.version, "source": rec.source,
                "fallback": rec.fallback, "age": age, "customer_idx": customer_idx,
                "recommendations": [x.to_json() for x in recs], "purchases": [x.to_json() for x in purchases],
                "purchases_before": str(week.cutoff), "purchase_windows": windows, "notes": notes, "timings": timings}

    @staticmethod
    def random_customer(snap: Snapshot, rnd: random.Random | None = None) -> str | None:
        if snap.n_customers == 0:
            return None
        i = (rnd or random).randrange(snap.n_customers)
        return snap.customer_ids[i].decode("ascii")


# ---------------------------------------------------------------------------------------------- HTML

SOURCE_COLOURS = {"repurchase": "#1b7f5b", "same_product": "#3f8f3f", "popular": "#a15c00", "age_popular": "#b8860b",
                  "bought_together": "#6a3fa0", "als": "#2d5fa8", "bpr": "#2a8a9e", "two_tower": "#b0306a", FILL: "#666"}

CSS = """
*{box-sizing:border-box}[hidden]{display:none!important}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;background:#f6f6f4}
header{background:#222;color:#fff;padding:12px 24px;display:flex;gap:24px;align-items:center;flex-wrap:wrap}
header h1{font-size:18px;margin:0;font-weight:600}header .snap{font-size:12px;color:#bbb}
form{display:inline-flex;gap:6px;margin:0}input{padding:6px 8px;border:1px solid #999;border-radius:4px;font:inherit;font-size:13px}
input[name=customer_id]{width:34em;font-family:ui-monospace,monospace}input[name=age]{width:6em}
button{padding:6px 12px;border:0;border-radius:4px;background:#e50010;color:#fff;font:inherit;font-size:13px;cursor:pointer}
button.secondary{background:#555}main{padding:16px 24px}
.who{display:flex;gap:12px;align-items:center;flex-wrap:wrap;margin-bottom:8px}.who code{font-size:13px}
.badge{padding:3px 10px;border-radius:12px;font-size:12px;font-weight:600;color:#fff}
.badge.personal{background:#1b7f5b}.badge.fallback{background:#c26a00}
.error{background:#fde8e8;border:1px solid #e50010;padding:10px 14px;border-radius:4px;margin:8px 0}
.notes{font-size:12px;color:#666;margin:4px 0 8px;padding-left:18px}
h2{font-size:15px;margin:18px 0 8px}h2 small{font-weight:400;color:#777}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:12px}
.tile{background:#fff;border-radius:6px;overflow:hidden;box-shadow:0 1px 2px rgba(0,0,0,.12);font-size:12px;
display:flex;flex-direction:column}
.pic{aspect-ratio:3/4;background:#fafafa;display:flex;align-items:center;justify-content:center;position:relative}
.pic img{width:100%;height:100%;object-fit:contain}
.pic .pos{position:absolute;top:4px;left:4px;background:rgba(0,0,0,.6);color:#fff;border-radius:3px;padding:0 5px;font-size:11px}
.placeholder{width:100%;height:100%;background:#d6d6d6;color:#555;display:flex;flex-direction:column;align-items:center;justify-content:center;text-align:center;padding:8px;gap:4px}
.placeholder b{font-size:13px}.body{padding:6px 8px 8px;display:flex;flex-direction:column;gap:2px}
.name{font-weight:600;font-size:13px}.meta{color:#666}.price{font-weight:600}.aid{color:#999;font-family:ui-monospace,monospace;font-size:10px}
.sources{display:flex;flex-wrap:wrap;gap:3px;margin-top:3px}
.src{color:#fff;border-radius:3px;padding:0 5px;font-size:10.5px;background:#444}
footer{font-size:11px;color:#888;padding:8px 24px 16px}
"""


def _e(x) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _colour(source: str) -> str:
    return SOURCE_COLOURS.get(source, "#c26a00" if source.startswith("fallback") else "#444")


def _tile_html(t: dict, position: int | None = None) -> str:
    label = f"<b>{_e(t['product_type'] or 'article')}</b><span>{_e(t['colour'] or t['article_id'])}</span>"
    placeholder = f'<div class="placeholder"{" hidden" if t["image"] else ""}>{label}</div>'
    pic = ""
    if t["image"]:
        pic = (f'<img src="{_e(t["image"])}" alt="{_e(t["name"] or t["article_id"])}" loading="lazy" '
               'onerror="this.hidden=true;this.nextElementSibling.hidden=false">')
    pos = f'<span class="pos">{position}</span>' if position is not None else ""
    price = f"{t['price']:.4f}" if t["price"] is not None else "price unknown"
    lines = [f'<div class="name">{_e(t["name"] or "(unknown article)")}</div>',
             f'<div class="meta colour">{_e(" · ".join(x for x in (t["colour"], t["product_type"]) if x))}</div>',
             f'<div class="price">{_e(price)}</div>']
    if t.get("day"):
        qty = f" ×{t['quantity']}" if (t.get("quantity") or 1) > 1 else ""
        lines.append(f'<div class="meta day">bought {_e(t["day"])}{qty}</div>')
    if t.get("sources") is not None or position is not None:
        chips = "".join(
            f'<span class="src" data-source="{_e(s["source"])}" style="background:{_colour(s["source"])}">'
            f'{_e(s["source"])}{"" if s["rank"] is None else " #" + str(s["rank"])}</span>'
            for s in (t.get("sources") or [{"source": "sources unknown", "rank": None}]))
        lines.append(f'<div class="sources">{chips}</div>')
    lines.append(f'<div class="aid">{_e(t["article_id"])}</div>')
    kind = "rec" if position is not None else "purchase"
    return (f'<article class="tile {kind}" data-article-id="{_e(t["article_id"])}">'
            f'<div class="pic">{pic}{placeholder}{pos}</div><div class="body">{"".join(lines)}</div></article>')


def render_page(*, snap: Snapshot | None, view: dict | None = None, customer_id: str = "", age: str = "",
                error: str | None = None) -> str:
    head = ("No snapshot loaded" if snap is None
            else f"week {_e(snap.week)} · snapshot {_e(snap.version[:12])} · {snap.n_customers:,} customers")
    parts = [f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>hm_recsys · recommendations</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style></head><body>
<header><h1>hm_recsys recommendations</h1>
<form action="/page" method="get" id="search">
<input name="customer_id" placeholder="customer id (64 hex characters)" value="{_e(customer_id)}" autocomplete="off" spellcheck="false">
<input name="age" type="number" min="0" max="150" placeholder="age" value="{_e(age)}"
 title="picks the fallback list of an id the week does not know">
<button type="submit">Show</button></form>
<form action="/page/random" method="get"><button type="submit" class="secondary" id="random">Random customer</button></form>
<span class="snap">{head}</span></header><main>"""]
    if error:
        parts.append(f'<div class="error" role="alert">{_e(error)}</div>')
    if view is not None:
        src = view["source"]
        badge = "personal" if src == "personal" else f"fallback: {view['fallback']}"
        parts.append(f'<div class="who"><span>Customer</span><code id="customer">{_e(view["customer_id"])}</code>'
                     f'<span class="badge {src}" id="list-source" data-source="{src}">{_e(badge)}</span></div>')
        if view["notes"]:
            parts.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in view["notes"]) + "</ul>")
        parts.append(f'<h2>Recommendations for week {_e(view["week"])} <small>({len(view["recommendations"])}, in order; '
                     'chips: the candidate sources that proposed each, with their rank)</small></h2>'
                     '<section class="grid" id="recommendations">'
                     + "".join(_tile_html(t, i + 1) for i, t in enumerate(view["recommendations"])) + "</section>")
        parts.append(f'<h2>Last purchases <small>(before {_e(view["purchases_before"])}, most recent first, at most {PURCHASES}; '
                     'price paid)</small></h2><section class="grid" id="purchases">'
                     + ("".join(_tile_html(t) for t in view["purchases"]) or '<p class="meta">No purchases found.</p>')
                     + "</section>")
        tm = view["timings"]
        parts.append(f'<footer>read in {tm.get("total_ms")} ms ({", ".join(f"{k[:-3]} {v}" for k, v in tm.items() if k != "total_ms")}) · '
                     f'<a href="/page/data?customer_id={quote(view["customer_id"])}">JSON</a> · '
                     f'<a href="/recommendations/{quote(view["customer_id"])}">API</a></footer>')
    elif error is None and snap is not None:
        parts.append('<p>Search a customer id, or pick a random customer.</p>')
    parts.append("</main></body></html>")
    return "".join(parts)
