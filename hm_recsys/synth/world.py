"""Generate a synthetic H&M world on disk in exactly the Kaggle layout and schema."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from hm_recsys import io, schema
from hm_recsys.synth.catalog import build_catalog
from hm_recsys.synth.customers import build_population
from hm_recsys.synth.images import write_images
from hm_recsys.synth.scales import Scale, get_scale
from hm_recsys.synth.transactions import simulate

RAW_DIR = "raw"
ROWS_PER_WRITE = 2_000_000
_EPOCH = dt.date(1970, 1, 1)


def generate_world(out_dir: str | Path, scale: str | Scale = "demo", seed: int = 0,
                   images: bool | None = None) -> Path:
    """Write ``out_dir/raw/{articles,customers,transactions_train}.csv`` and ``raw/images/``.

    The raw folder is built beside the target and renamed into place at the end, so a world on disk
    is always complete. Same scale + seed -> byte-identical files. ``images=None`` uses the scale's
    default (full scale: no images). Returns the raw folder.
    """
    sc = get_scale(scale)
    with_images = sc.images if images is None else bool(images)
    raw = Path(out_dir) / RAW_DIR
    streams = np.random.SeedSequence(int(seed)).spawn(4)
    rng_catalog, rng_people, rng_tx, rng_img = (np.random.default_rng(s) for s in streams)

    catalog = build_catalog(sc, rng_catalog)
    pop = build_population(sc, catalog, rng_people)
    with io.atomic_path(raw) as tmp:
        tmp.mkdir(parents=True)
        catalog.frame.sort("article_id").write_csv(tmp / schema.ARTICLES_CSV)
        pop.frame.write_csv(tmp / schema.CUSTOMERS_CSV)
        _write_transactions(tmp / schema.TRANSACTIONS_CSV, sc, catalog, pop, rng_tx)
        if with_images:
            write_images(tmp / schema.IMAGES_DIR, catalog.frame["article_id"].to_list(), catalog.shape,
                         catalog.pattern, catalog.rgb, catalog.has_image, sc.image_size, rng_img)
    return raw


def _write_transactions(path: Path, sc: Scale, catalog, pop, rng: np.random.Generator) -> int:
    """Stream the simulation into one CSV, a few million rows at a time (bounded memory)."""
    article_ids = catalog.frame["article_id"]
    customer_ids = pop.frame["customer_id"]
    first_day = (sc.start - _EPOCH).days
    buffer: list = []
    buffered = 0
    total = 0
    with open(path, "wb") as fh:
        header = True

        def flush() -> None:
            nonlocal header, buffered
            day = np.concatenate([np.full(r.customer.size, r.day, dtype=np.int32) for r in buffer])
            frame = pl.DataFrame({
                "t_dat": pl.Series(day + first_day, dtype=pl.Int32).cast(pl.Date),
                "customer_id": customer_ids.gather(np.concatenate([r.customer for r in buffer])),
                "article_id": article_ids.gather(np.concatenate([r.article for r in buffer])),
                "price": np.concatenate([r.price for r in buffer]),
                "sales_channel_id": np.concatenate([r.channel for r in buffer]),
            }, schema=schema.TRANSACTION_COLUMNS)
            frame.write_csv(fh, include_header=header)
            header = False
            buffer.clear()
            buffered = 0

        for rows in simulate(sc, catalog, pop, rng):
            buffer.append(rows)
            buffered += rows.customer.size
            total += rows.customer.size
            if buffered >= ROWS_PER_WRITE:
                flush()
        if buffer:
            flush()
    return total
