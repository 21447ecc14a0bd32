"""Kaggle submission files: ``customer_id,prediction`` with 12 distinct space-separated 10-digit ids.

Recommenders produce long frames ``(customer_idx, article_idx, rank)``; this module fills every
customer up to 12 with a popular list, converts to the Kaggle format, validates it, writes it
atomically, and reads it back for scoring (so what is scored is exactly what was written).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from hm_recsys import io
from hm_recsys.metrics import K
from hm_recsys.schema import ARTICLE_ID_DIGITS
from hm_recsys.tables import Tables

HEADER = ["customer_id", "prediction"]


class SubmissionError(ValueError):
    """A submission that Kaggle would reject."""


def fill_popular(recs: pl.DataFrame, popular: list[int], n_customers: int, k: int = K) -> pl.DataFrame:
    """Every customer ``0..n_customers-1`` gets exactly ``k`` distinct articles: their own first, then ``popular``.

    Returns ``customer_idx, article_idx, rank`` sorted by customer then rank. Which fill articles a customer gets is
    a ``[customers, 2k]`` boolean matrix (33 MB at full scale), not a customers x 2k cross join of rows."""
    if len(set(popular)) < k:
        raise ValueError(f"the popular fill list needs {k} distinct articles, got {len(set(popular))}")
    # a customer's best copy of each article: sorts, not a hash of the 16.5M pairs (unique() peaked at +2 GiB)
    ranked = (recs.select(pl.col("customer_idx").cast(pl.Int32), pl.col("article_idx").cast(pl.Int32), "rank")
              .sort("customer_idx", "rank", "article_idx").with_row_index("pos"))
    own = (
        ranked.sort("customer_idx", "article_idx", "pos")
        .filter(pl.col("customer_idx").ne_missing(pl.col("customer_idx").shift(1))
                | pl.col("article_idx").ne_missing(pl.col("article_idx").shift(1)))
        .sort("pos")
        .with_columns(order=pl.int_range(pl.len()).over("customer_idx"))
        .filter(pl.col("order") < k)
    )
    customers, articles = own["customer_idx"].to_numpy(), own["article_idx"].to_numpy()
    outside = (customers < 0) | (customers >= n_customers)
    if outside.any():
        raise ValueError(f"recommendations: customer_idx {customers[outside][0]} is outside 0..{n_customers - 1}")
    fill = np.asarray(list(dict.fromkeys(popular))[: 2 * k], dtype=np.int32)
    slot = np.full(max(int(fill.max()), int(articles.max(initial=0))) + 1, -1, dtype=np.int64)
    slot[fill] = np.arange(len(fill))
    j = slot[articles]  # the fill slot of each own article, -1 if none
    taken = np.zeros((n_customers, len(fill)), dtype=bool)
    taken[customers[j >= 0], j[j >= 0]] = True
    need = k - np.bincount(customers, minlength=n_customers)  # own rows are at most k a customer
    usable = ~taken
    usable &= np.cumsum(usable, axis=1, dtype=np.int16) <= need[:, None]
    rows, cols = np.nonzero(usable)  # customer ascending, then fill order
    filler = pl.DataFrame({"customer_idx": rows.astype(np.int32), "article_idx": fill[cols],
                           "order": cols.astype(np.int64) + k})
    return (
        pl.concat([own.select("customer_idx", "article_idx", pl.col("order").cast(pl.Int64)), filler])
        .sort("customer_idx", "order")
        .with_columns(rank=pl.int_range(pl.len()).over("customer_idx").cast(pl.Int16))
        .select("customer_idx", "article_idx", "rank")
    )


# Customers per part when a submission is converted, validated or read back: what is held as strings (split,
# exploded, joined) grows with this, not with all 1.37M customers' 16.5M ids.
PART_CUSTOMERS = 1 << 17


def to_kaggle(recs: pl.DataFrame, tables: Tables, customers: pl.DataFrame | None = None) -> pl.DataFrame:
    """Long frame -> one row per customer in ``customers.csv`` order with the original string ids.

    ``customers``: the rows of ``tables.customers`` to convert (default: all of them)."""
    customers = tables.customers if customers is None else customers
    ids = recs.join(tables.articles.select("article_idx", "article_id"), on="article_idx", how="left")
    wide = ids.sort("customer_idx", "rank").group_by("customer_idx", maintain_order=True).agg(
        prediction=pl.col("article_id").str.join(" ")
    )
    return (
        customers.select("customer_idx", "customer_id")
        .join(wide, on="customer_idx", how="left")
        .sort("customer_idx")
        .select("customer_id", pl.col("prediction").fill_null(""))
    )


def validate_kaggle(sub: pl.DataFrame, tables: Tables, k: int = K, source: str = "submission") -> None:
    """Raise ``SubmissionError`` naming the row and value that Kaggle's format check would reject."""
    _validate_customers(sub, tables, source)
    for first in range(0, sub.height, PART_CUSTOMERS):
        _validate_predictions(sub.slice(first, PART_CUSTOMERS), tables, k, source, first)


def _validate_customers(sub: pl.DataFrame, tables: Tables, source: str) -> None:
    """Header, and every customer exactly once (the customer_id column only: cheap for the whole file)."""
    if sub.columns != HEADER:
        raise SubmissionError(f"{source}: header must be {HEADER}, got {sub.columns}")
    if sub.height != tables.n_customers:
        raise SubmissionError(f"{source}: {sub.height} rows, expected one per customer ({tables.n_customers})")
    ids = sub.select("customer_id")
    dup = ids.filter(pl.col("customer_id").is_duplicated())
    if dup.height:
        raise SubmissionError(f"{source}: customer_id {dup['customer_id'][0]!r} appears more than once")
    unknown = ids.join(tables.customers.select("customer_id"), on="customer_id", how="anti")
    if unknown.height:
        raise SubmissionError(f"{source}: unknown customer_id {unknown['customer_id'][0]!r}")


def _validate_predictions(part: pl.DataFrame, tables: Tables, k: int, source: str, offset: int) -> pl.DataFrame:
    """12 distinct well-formed known article ids in each row of ``part`` (file rows ``offset + 1`` on); returns the
    ids one row each (``row``, ``ids``)."""
    items = part.with_row_index("row", offset=offset + 1).with_columns(ids=pl.col("prediction").str.split(" "))
    bad_len = items.filter(
        (pl.col("ids").list.len() != k) | (pl.col("ids").list.unique().list.len() != k)
    )
    if bad_len.height:
        r = bad_len.row(0, named=True)
        raise SubmissionError(f"{source}: row {r['row']} ({r['customer_id']}) needs {k} distinct ids, got {r['prediction']!r}")
    flat = items.select("row", "customer_id", "ids").explode("ids")
    bad_id = flat.filter(~pl.col("ids").str.contains(rf"^\d{{{ARTICLE_ID_DIGITS}}}$"))
    if bad_id.height:
        r = bad_id.row(0, named=True)
        raise SubmissionError(f"{source}: row {r['row']} has malformed article id {r['ids']!r}")
    unknown_a = flat.join(tables.articles.select(pl.col("article_id").alias("ids")), on="ids", how="anti")
    if unknown_a.height:
        r = unknown_a.row(0, named=True)
        raise SubmissionError(f"{source}: row {r['row']} names unknown article {r['ids']!r}")
    return flat


def write_submission(recs: pl.DataFrame, popular: list[int], tables: Tables, path: str | Path) -> pl.DataFrame:
    """Fill, convert and validate ``PART_CUSTOMERS`` customers at a time, written atomically; returns the filled long frame."""
    filled = fill_popular(recs, popular, tables.n_customers)  # k rows a customer, by customer_idx: parts are slices
    with io.atomic_path(path) as tmp, open(tmp, "wb") as out:
        for first in range(0, tables.n_customers, PART_CUSTOMERS):
            customers = tables.customers.slice(first, PART_CUSTOMERS)  # row i is customer_idx i
            sub = to_kaggle(filled.slice(first * K, customers.height * K), tables, customers)
            if sub.columns != HEADER or sub.height != customers.height:
                raise SubmissionError(f"{path}: customers {first}..{first + customers.height - 1} did not convert one row each")
            _validate_predictions(sub, tables, K, str(path), first)
            sub.write_csv(out, include_header=first == 0)
    return filled


def read_submission(path: str | Path, tables: Tables) -> pl.DataFrame:
    """A Kaggle-format file back to the long frame, for scoring exactly what was written (validated as read)."""
    sub = pl.read_csv(path, schema={"customer_id": pl.String, "prediction": pl.String})
    _validate_customers(sub, tables, str(path))
    customer_idx = tables.customers.select("customer_id", "customer_idx")
    articles = tables.articles.select(pl.col("article_id").alias("ids"), "article_idx")
    parts = [pl.DataFrame(schema={"customer_idx": pl.Int32, "article_idx": pl.Int32, "rank": pl.Int16})]
    for first in range(0, sub.height, PART_CUSTOMERS):
        flat = _validate_predictions(sub.slice(first, PART_CUSTOMERS), tables, K, str(path), first)
        parts.append(
            flat.join(customer_idx, on="customer_id", maintain_order="left")
            .with_columns(rank=pl.int_range(pl.len()).over("row").cast(pl.Int16))
            .join(articles, on="ids", maintain_order="left")
            .select(pl.col("customer_idx").cast(pl.Int32), pl.col("article_idx").cast(pl.Int32), "rank")
        )
    return pl.concat(parts)
