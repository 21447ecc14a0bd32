"""Weekly warm-started towers: a chain of content-keyed links, restarted from scratch at fixed weeks.

Why: from scratch, every target week's towers re-learn 52 weeks of purchases although only one week
is new. Here week W's towers start from week W-1's and train on the new week only (``train(init_from=)``;
on the demo world recall@100 was higher than from scratch at a fifth of the time:
``benchmarks/results/2026-11-28_weekly_warm_start_demo.txt``). Every ``anchor_every`` calendar weeks (fixed weeks,
whatever weeks are asked for) the chain restarts from scratch, so:
- week W's towers are a function of the data before W alone, the same whichever weeks were built before
  and in what order: an incremental run equals a from-scratch run;
- nothing has to exist outside the weeks being built: a week computes the links since its anchor itself.

Each link lives in ``chain_root/<week>/<key>/``. The key hashes everything the link is computed from (the
previous link's key, the weekly shards it reads, the config, the image embeddings), so an existing link
is exactly what recomputing it would give, and is reused; a change anywhere upstream gives new keys.
Windows and links are published with ``io.create_once``: steps on several hosts may build the same link
at once with no lock; the first copy published is kept and every step continues from that one.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import polars as pl

from hm_recsys.retrieval import tfrecords as tfr
from hm_recsys.retrieval import tower_features as tfeat
from hm_recsys.retrieval import two_tower
from hm_recsys.tables import Tables
from hm_recsys.weeks import WEEK_DAYS, TargetWeek

CHAIN_VERSION = 1


def anchor_of(week: TargetWeek, every: int) -> TargetWeek:
    """The week the chain through ``week`` restarts from scratch: fixed calendar weeks, ``every`` apart."""
    if every < 1:
        raise ValueError(f"anchor_every must be >= 1, got {every}")
    return week.shift(-((week.start.toordinal() // WEEK_DAYS) % every))


def _digest(payload: dict) -> str:
    return hashlib.blake2b(json.dumps(payload, sort_keys=True).encode(), digest_size=16).hexdigest()


def train_chain(
    tables: Tables,
    week: TargetWeek,
    shards_root: str | os.PathLike,
    chain_root: str | os.PathLike,
    config: two_tower.TwoTowerConfig,
    image_embeddings: pl.DataFrame | None = None,
    n_shards: int = 1,
    seed: int = 0,
    params: tfeat.FeatureParams = tfeat.FeatureParams(),
    say: Callable[[str], None] = lambda line: None,
) -> tuple[Path, list[dict]]:
    """The towers of ``week`` (its link's folder) and one record per link: week, start, reused or trained.

    Anchor links train ``config.epochs`` on the 52-week window; the others start from the previous link
    and train ``config.incremental_epochs`` on its newest ``config.incremental_weeks`` weeks. Reads only
    transactions before ``week``'s cutoff (every link is of a week at or before it).
    """
    if not config.warm_start:
        raise ValueError("train_chain needs config.warm_start (from scratch: two_tower.train)")
    chain_root = Path(chain_root)
    images = None
    if config.use_images:
        if image_embeddings is None:
            raise ValueError("config.use_images is set: pass the image embeddings frame (or use_images=False)")
        images = two_tower.fingerprint(two_tower.image_matrix(image_embeddings, tables.n_articles))
    anchor = anchor_of(week, config.anchor_every)
    previous: tuple[str, Path] | None = None
    records = []
    for i in range((week.start - anchor.start).days // WEEK_DAYS + 1):
        link = anchor.shift(i)
        shard = tfr.shard_keys(tables, tfr.window_weeks(link), params, seed, n_shards=n_shards)
        window = chain_root / link.key / f"window-{_digest({'shards': shard})}"
        if not (window / tfr.MANIFEST).is_file():
            tfr.write_weekly_window(tables, link, shards_root, window, n_shards=n_shards, seed=seed, params=params,
                                    serving=False, keyed=True)
        reads = list(shard.values()) if previous is None else list(shard.values())[-config.incremental_weeks:]
        key = _digest({"version": CHAIN_VERSION, "previous": previous[0] if previous else None, "shards": reads,
                       "config": asdict(config), "images": images})
        out = chain_root / link.key / key
        reused = (out / two_tower.MODEL_META).is_file()
        if not reused:
            say(f"towers of {link.key}: {'warm start from ' + previous[1].parent.name if previous else 'from scratch (anchor week)'}")
            two_tower.train(window, out, config, image_embeddings, init_from=previous[1] if previous else None,
                            keyed=True)
        records.append({"week": link.key, "start": "warm" if previous else "scratch", "reused": reused})
        previous = (key, out)
    return previous[1], records
