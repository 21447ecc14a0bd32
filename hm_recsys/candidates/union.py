"""Union of the candidate sources: one row per (customer, article) any source proposed.

Each source's score and rank stay as ranker features (``<source>_score``, ``<source>_rank``, null where
the source did not propose the pair), plus ``n_sources`` (how many sources agree).
"""

from __future__ import annotations

import re

import polars as pl

from hm_recsys.candidates.contract import KEYS, validate_candidates

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def union_candidates(sources: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Outer union of ``sources`` (name -> candidate frame), sorted by customer_idx, article_idx.

    Columns: customer_idx, article_idx, then ``<name>_score`` (Float32) and ``<name>_rank`` (Int16) for each
    source in name order, then ``n_sources`` (Int8).
    """
    if not sources:
        raise ValueError("union_candidates: no source given")
    names = sorted(sources)
    for name in names:
        if not _NAME.match(name):
            raise ValueError(f"union_candidates: source name {name!r} must be lower_snake_case")
        validate_candidates(sources[name], name)
    out = None
    for name in names:
        feats = sources[name].lazy().select(
            *KEYS, pl.col("score").alias(f"{name}_score"), pl.col("rank").alias(f"{name}_rank")
        )
        out = feats if out is None else out.join(feats, on=KEYS, how="full", coalesce=True)
    return (
        out.sort(KEYS)
        .with_columns(n_sources=pl.sum_horizontal([pl.col(f"{n}_rank").is_not_null() for n in names]).cast(pl.Int8))
        .collect()
    )
