"""Features of the two towers, all computed from transactions strictly before the target week.

User tower (as of the cutoff, one row per customer): age, price sensitivity, time-decayed category
affinity, channel mix and activity. Item tower: categorical attributes re-indexed to small
vocabularies, id keys (0 = not seen in the training window, so unseen customers / articles share one
learned "cold" embedding), and sales recency and price level measured *as of the week each example
happened*: a purchase made 20 weeks before the cutoff sees the article's popularity of the week
before it, exactly as the target week sees last week's. Nothing here reads a transaction on or after
``week.start``. (User features are as of the cutoff for every example, as in the original design;
a training row's own purchase is part of its user's affinity, a milder train/serve gap than the
item side would have, which is why the item side is point-in-time.)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from hm_recsys import schema
from hm_recsys.tables import Tables
from hm_recsys.weeks import FINETUNE_DAYS, TRAIN_DAYS, WEEK_DAYS, TargetWeek, history

# Categorical article attributes the item tower embeds (codes re-indexed 1..n, 0 = null/unknown).
ITEM_CATEGORICALS: tuple[str, ...] = schema.ARTICLE_ATTRIBUTES
# Groupings over which a customer's time-decayed purchase shares form the category affinity.
AFFINITY_GROUPS: tuple[str, ...] = ("index_group_no", "product_group_name", "garment_group_no")
AGE_MEAN, AGE_STD = 36.0, 14.0
# Part of every weekly shard's content key. 2: sales sums by np.bincount (the same bits whatever the cutoff);
# week 0 is the 7 days before the cutoff (it was 6, the 7th day counted as week 1).
FEATURES_VERSION = 2


@dataclass(frozen=True)
class FeatureParams:
    """Knobs of the feature definitions (part of the TFRecord manifest, so a change shows)."""

    affinity_half_life_days: float = 30.0
    recency_scale_days: float = 30.0
    train_days: int = TRAIN_DAYS
    finetune_days: int = FINETUNE_DAYS
    # True: a training row whose article (product) had not sold before the row's week uses the unknown
    # id, as never-sold articles do in the target week. Principled, but on the demo world it measured
    # no better (recall@100 0.558 vs 0.563, cold-start share 0.45 vs 0.46), so off by default.
    point_in_time_keys: bool = False


def cat_column(name: str) -> str:
    return f"cat_{name}"


def categorical_vocabs(articles: pl.DataFrame, columns: tuple[str, ...] = ITEM_CATEGORICALS) -> dict[str, list]:
    """Sorted distinct non-null values of each attribute; value ``v`` gets index ``vocab.index(v) + 1``.

    Built from the article catalogue (static metadata, no transactions), so every article the item
    tower scores, sold or not, has its attributes in the vocabulary.
    """
    missing = [c for c in columns if c not in articles.columns]
    if missing:
        raise ValueError(f"articles frame lacks attribute columns {missing}")
    return {c: articles[c].drop_nulls().unique().sort().to_list() for c in columns}


def encode(values: pl.Expr, vocab: list) -> pl.Expr:
    """Index of each value in ``vocab`` plus one; 0 for null or a value outside the vocabulary."""
    return values.replace_strict(vocab, list(range(1, len(vocab) + 1)), default=0, return_dtype=pl.Int32)


def _check_tables(tables: Tables) -> None:
    for name, frame, key in (("articles", tables.articles, "article_idx"), ("customers", tables.customers, "customer_idx")):
        if key not in frame.columns:
            raise ValueError(f"{name} table lacks column {key!r}")
        idx = frame[key].to_numpy()
        if not np.array_equal(idx, np.arange(frame.height)):
            bad = int(np.flatnonzero(idx != np.arange(frame.height))[0])
            raise ValueError(f"{name} table: row {bad} has {key}={idx[bad]} (expected dense 0..n-1 in row order)")
    for col in ("t_dat", "customer_idx", "article_idx", "price", "sales_channel_id"):
        if col not in tables.transactions.columns:
            raise ValueError(f"transactions table lacks column {col!r}")


def _past(tables: Tables, week: TargetWeek, days: int | None) -> pl.DataFrame:
    """Transactions of the last ``days`` before the cutoff (all when None), keys checked against the tables."""
    tx = history(tables.transactions, week, days=days)
    bad = tx.filter(
        (pl.col("customer_idx") < 0)
        | (pl.col("customer_idx") >= tables.n_customers)
        | (pl.col("article_idx") < 0)
        | (pl.col("article_idx") >= tables.n_articles)
    )
    if bad.height:
        row = bad.row(0, named=True)
        raise ValueError(f"transactions: key out of range in row {row} ({tables.n_customers} customers, {tables.n_articles} articles)")
    return tx


PURCHASE_KEY = ("t_dat", "customer_idx", "article_idx")


def first_purchases(transactions: pl.DataFrame) -> pl.Series:
    """True on the first row of each (day, customer, article), in table order.

    A row's flag depends only on rows of its own day, so the flagged rows of any window are exactly that
    window's ``unique(keep="first", maintain_order=True)``: one pass instead of one per window."""
    return transactions.select(pl.struct(*PURCHASE_KEY).is_first_distinct()).to_series()


def _window(tables: Tables, week: TargetWeek, days: int, first: pl.Series | None = None) -> pl.DataFrame:
    """Deduplicated purchases (one row per customer, article, day) of the last ``days`` before the cutoff;
    ``first``: ``first_purchases`` of the tables' transactions, when the caller has it (the same rows)."""
    if first is None:
        return _past(tables, week, days).unique(list(PURCHASE_KEY), keep="first", maintain_order=True)
    flagged = Tables(tables.articles, tables.customers, tables.transactions.with_columns(first.alias("_first")))
    return _past(flagged, week, days).filter("_first").drop("_first")


def id_keys(tables: Tables, week: TargetWeek, params: FeatureParams = FeatureParams()) -> dict[str, np.ndarray]:
    """Embedding keys: ``idx + 1`` for customers / articles / products seen in the training window, else 0.

    Also the product key of every article (the product vocabulary is the products sold in the window),
    so a new colour variant of a known product inherits that product's embedding.
    """
    tx = _past(tables, week, params.train_days)  # who and what was seen: the same with or without duplicates
    seen_c = np.zeros(tables.n_customers, dtype=bool)
    seen_c[tx["customer_idx"].unique().to_numpy()] = True
    seen_a = np.zeros(tables.n_articles, dtype=bool)
    seen_a[tx["article_idx"].unique().to_numpy()] = True
    codes = tables.articles["product_code"].to_numpy()
    known_products = np.unique(codes[seen_a])
    pos = np.minimum(np.searchsorted(known_products, codes), max(len(known_products) - 1, 0))
    is_known = known_products[pos] == codes if len(known_products) else np.zeros(len(codes), dtype=bool)
    return {
        "customer_key": np.where(seen_c, np.arange(tables.n_customers) + 1, 0).astype(np.int64),
        "article_key": np.where(seen_a, np.arange(tables.n_articles) + 1, 0).astype(np.int64),
        "product_key": np.where(is_known, pos + 1, 0).astype(np.int64),
        "n_products": np.int64(len(known_products)),
    }


def user_features(tables: Tables, week: TargetWeek, params: FeatureParams = FeatureParams(),
                  customers: np.ndarray | None = None, shared: "SharedInputs | None" = None) -> pl.DataFrame:
    """One row per customer (``customer_idx`` order), as of the cutoff, from the training window;
    with ``customers``, only theirs (the same values: population statistics still use everyone).

    age: ``[(age - 36) / 14, missing]``; price_sensitivity: ``[mean log(price / article's median price),
    (mean log price - population mean) / population std]``; category_affinity: time-decayed purchase shares
    per grouping in ``AFFINITY_GROUPS`` (each grouping sums to 1); channel_mix: ``[online share, store share]``;
    activity: ``[log1p(purchases), exp(-days since last purchase / recency_scale)]``. Zeros without history.
    ``shared``: ``SharedInputs`` of the tables, when the caller has them (the same values, faster).
    """
    _check_tables(tables)
    keys = id_keys(tables, week, params)
    tx = _window(tables, week, params.train_days, shared.first if shared else None)
    cutoff = week.cutoff
    age_days = (pl.lit(cutoff) - pl.col("t_dat")).dt.total_days().cast(pl.Float64)
    n = tables.n_customers
    rows = np.arange(n, dtype=np.int32) if customers is None else np.unique(np.asarray(customers, dtype=np.int32))

    # Price sensitivity: how a customer's prices compare to what the same articles usually sell for.
    med = tx.group_by("article_idx").agg(med_price=pl.col("price").median())
    px = (
        tx.join(med, on="article_idx", how="left")
        .with_columns(
            rel=(pl.col("price").cast(pl.Float64) / pl.col("med_price").cast(pl.Float64)).clip(1e-3, 1e3).log(),
            logp=pl.col("price").cast(pl.Float64).clip(1e-6, None).log(),
        )
        .group_by("customer_idx")
        .agg(
            rel=pl.col("rel").mean(),
            logp=pl.col("logp").mean(),
            online=(pl.col("sales_channel_id") == 2).mean(),
            n=pl.len(),
            last=age_days.min(),
        )
    )
    idx = px["customer_idx"].to_numpy()
    price = np.zeros((n, 2), dtype=np.float32)  # n x 2 is small; only the affinity is cut to ``rows``
    channel = np.zeros((n, 2), dtype=np.float32)
    activity = np.zeros((n, 2), dtype=np.float32)
    if px.height:
        logp = px["logp"].to_numpy()
        sd = float(logp.std()) or 1.0
        price[idx, 0] = px["rel"].to_numpy()
        price[idx, 1] = (logp - float(logp.mean())) / sd
        online = px["online"].to_numpy()
        channel[idx, 0] = online
        channel[idx, 1] = 1.0 - online
        activity[idx, 0] = np.log1p(px["n"].to_numpy())
        activity[idx, 1] = np.exp(-px["last"].to_numpy() / params.recency_scale_days)

    age = tables.customers["age"].cast(pl.Float64).to_numpy()
    age_missing = ~np.isfinite(age)
    age_feat = np.stack([np.where(age_missing, 0.0, (age - AGE_MEAN) / AGE_STD), age_missing.astype(float)], axis=1)

    if customers is not None:
        tx = tx.filter(pl.col("customer_idx").is_in(pl.Series(rows).implode()))
    affinity = category_affinity(tables, tx, cutoff, params.affinity_half_life_days, rows)
    return pl.DataFrame(
        {
            "customer_idx": rows,
            "customer_key": keys["customer_key"][rows],
            "age": _array(age_feat[rows]),
            "price_sensitivity": _array(price[rows]),
            "category_affinity": _array(affinity),
            "channel_mix": _array(channel[rows]),
            "activity": _array(activity[rows]),
        }
    )


def affinity_vocabs(articles: pl.DataFrame) -> dict[str, list]:
    return categorical_vocabs(articles, AFFINITY_GROUPS)


def category_affinity(tables: Tables, tx: pl.DataFrame, cutoff: dt.date, half_life_days: float,
                      customers: np.ndarray | None = None) -> np.ndarray:
    """``[n_customers, sum(len(vocab)+1)]``: per grouping, purchase shares weighted by ``0.5 ** (age / half_life)``.

    With ``customers`` (sorted ``customer_idx``; ``tx`` holds no one else), one row per customer of it.
    """
    vocabs = affinity_vocabs(tables.articles)
    n = tables.n_customers if customers is None else len(customers)
    out = np.zeros((n, sum(len(v) + 1 for v in vocabs.values())), dtype=np.float32)
    if tx.height == 0:
        return out
    weighted = tx.select(
        "customer_idx",
        "article_idx",
        w=pl.lit(0.5) ** ((pl.lit(cutoff) - pl.col("t_dat")).dt.total_days().cast(pl.Float64) / half_life_days),
    )
    offset = 0
    for col, vocab in vocabs.items():
        codes = tables.articles.select("article_idx", code=encode(pl.col(col), vocab))
        agg = (
            weighted.join(codes, on="article_idx", how="left")
            .group_by("customer_idx", "code")
            .agg(w=pl.col("w").sum())
            .with_columns(share=pl.col("w") / pl.col("w").sum().over("customer_idx"))
        )
        row = agg["customer_idx"].to_numpy()
        if customers is not None:
            row = np.searchsorted(customers, row)
        out[row, offset + agg["code"].to_numpy()] = agg["share"].to_numpy()
        offset += len(vocab) + 1
    return out


@dataclass(frozen=True)
class SalesGrid:
    """Per-article purchase counts and summed log prices per week before ``cutoff`` (column k = the k-th week
    back), built once and cut to ``WeeklySales`` as of any earlier cutoff on the same weekly grid.

    Sums are ``np.bincount``'s, in table order: a (article, week) cell adds the same rows in the same order
    whatever the cutoff it was built for, so every cut gives the same bits (polars' threaded group sums need not).
    """

    cutoff: dt.date
    counts: np.ndarray      # [n_articles, n_weeks] float64
    log_price: np.ndarray   # same shape
    days_before: np.ndarray  # per past row, days from its t_dat to ``cutoff`` (>= 1), table order
    logp: np.ndarray         # per past row, log(price), table order

    @classmethod
    def of(cls, tables: Tables, week: TargetWeek) -> "SalesGrid":
        tx = _past(tables, week, None).select(
            "article_idx",
            days=(pl.lit(week.cutoff) - pl.col("t_dat")).dt.total_days().cast(pl.Int64),
            logp=pl.col("price").cast(pl.Float64).clip(1e-6, None).log(),
        )
        days = tx["days"].to_numpy().astype(np.int32)
        k = (days.astype(np.int64) - 1) // WEEK_DAYS  # days 1..7 before the cutoff: week 0
        n_weeks = int(k.max()) + 1 if tx.height else 0
        cell = tx["article_idx"].to_numpy().astype(np.int64) * n_weeks + k
        size = tables.n_articles * n_weeks
        counts = np.bincount(cell, minlength=size).astype(np.float64).reshape(tables.n_articles, n_weeks)
        log_price = np.bincount(cell, weights=tx["logp"].to_numpy(), minlength=size).reshape(tables.n_articles, n_weeks)
        return cls(week.cutoff, counts, log_price, days, tx["logp"].to_numpy())

    def as_of(self, week: TargetWeek) -> "WeeklySales":
        """The sales seen from ``week``'s cutoff: this grid without its weeks on or after it."""
        shift = (self.cutoff - week.cutoff).days
        if shift < 0 or shift % WEEK_DAYS:
            raise ValueError(f"sales grid to {self.cutoff} cannot give week {week.key}: not a whole number of weeks before it")
        past = self.days_before > shift
        n_past = int(past.sum())
        j = shift // WEEK_DAYS
        n_articles = self.counts.shape[0]
        if n_past == 0:
            return WeeklySales(np.zeros((n_articles, 5)), np.zeros((n_articles, 5)), 0.0, 1.0)
        spare = np.zeros((n_articles, 4))
        logp = self.logp[past]  # numpy's mean / std of a contiguous array: the same bits for the same rows
        std = float(logp.std(ddof=1)) if n_past > 1 else 1.0
        return WeeklySales(np.hstack([self.counts[:, j:], spare]), np.hstack([self.log_price[:, j:], spare]),
                           float(logp.mean()), std or 1.0)


@dataclass(frozen=True)
class WeeklySales:
    """Per-article weekly purchase counts and summed log prices before the cutoff.

    Column k is the k-th week back (0 = the week just before the cutoff). Seen from ``as_of = j``
    weeks back, an article's past is columns j and older: that is how a training example from week k
    (``as_of = k + 1``) and the target week (``as_of = 0``) get the very same kind of features.
    """

    counts: np.ndarray      # [n_articles, n_weeks + 4] float64 (4 spare zero weeks for the 4-week sums)
    log_price: np.ndarray   # same shape: sum of log(price) of those purchases
    price_mean: float       # population mean / std of log(price), for standardising
    price_std: float

    @classmethod
    def of(cls, tables: Tables, week: TargetWeek) -> "WeeklySales":
        return SalesGrid.of(tables, week).as_of(week)

    def first_week(self) -> np.ndarray:
        """Per article, the week index of its first sale (the largest k with a sale); -1 if never sold."""
        counts = self.counts
        n_weeks = counts.shape[1]
        return np.where(counts.any(axis=1), n_weeks - 1 - np.argmax(counts[:, ::-1] > 0, axis=1), -1)

    def recency(self, article_idx: np.ndarray, as_of: np.ndarray) -> np.ndarray:
        """``[log1p(sales in the week before), log1p(sales in the 4 weeks before) / 2, never sold before,
        log1p(weeks since its first sale) / 2]`` of ``article_idx[i]`` seen from ``as_of[i]``."""
        counts = self.counts
        n_weeks = counts.shape[1]
        cum = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1]  # cum[:, j] = sales in week j and older
        first = self.first_week()
        j = np.minimum(as_of, n_weeks - 1)
        last1 = counts[article_idx, j]
        last4 = cum[article_idx, j] - cum[article_idx, np.minimum(j + 4, n_weeks - 1)]
        sold_before = cum[article_idx, j] > 0
        weeks_since = np.where(sold_before, first[article_idx] - j + 1, 0)
        return np.stack(
            [np.log1p(last1), np.log1p(last4) / 2.0, (~sold_before).astype(float), np.log1p(weeks_since) / 2.0], axis=1
        ).astype(np.float32)

    def price(self, article_idx: np.ndarray, as_of: np.ndarray) -> np.ndarray:
        """``[standardised mean log price of all sales before as_of, no price known]`` (0, 1 for unsold articles)."""
        n_weeks = self.counts.shape[1]
        j = np.minimum(as_of, n_weeks - 1)
        n = np.cumsum(self.counts[:, ::-1], axis=1)[:, ::-1][article_idx, j]
        s = np.cumsum(self.log_price[:, ::-1], axis=1)[:, ::-1][article_idx, j]
        known = n > 0
        z = np.where(known, (s / np.maximum(n, 1) - self.price_mean) / self.price_std, 0.0)
        return np.stack([z, (~known).astype(float)], axis=1).astype(np.float32)


@dataclass(frozen=True)
class SharedInputs:
    """What every week of a window otherwise recomputes from the whole history: the first-purchase flags
    (a row's flag depends only on its own day) and the sales grid to ``week``'s cutoff, which serves that
    week and every earlier one."""

    first: pl.Series
    sales: SalesGrid

    @classmethod
    def of(cls, tables: Tables, week: TargetWeek) -> "SharedInputs":
        return cls(first_purchases(tables.transactions), SalesGrid.of(tables, week))


ITEM_DYNAMIC_FEATURES = ("item_recency", "item_price")


def item_features(tables: Tables, week: TargetWeek, params: FeatureParams = FeatureParams(),
                  sales: WeeklySales | None = None) -> pl.DataFrame:
    """One row per article (``article_idx`` order) as the target week sees it: keys, attribute codes,
    sales recency and price level. ``sales``: ``WeeklySales.of(tables, week)`` if the caller has it."""
    _check_tables(tables)
    keys = id_keys(tables, week, params)
    vocabs = categorical_vocabs(tables.articles)
    sales = sales if sales is not None else WeeklySales.of(tables, week)
    a = np.arange(tables.n_articles)
    codes = tables.articles.select(*[encode(pl.col(c), v).alias(cat_column(c)) for c, v in vocabs.items()])
    now = np.zeros_like(a)
    return (
        pl.DataFrame({"article_idx": a.astype(np.int32), "article_key": keys["article_key"], "product_key": keys["product_key"]})
        .hstack(codes)
        .with_columns(item_recency=_array(sales.recency(a, now)), item_price=_array(sales.price(a, now)))
    )


def examples(
    tables: Tables, week: TargetWeek, days: int, users: pl.DataFrame, params: FeatureParams = FeatureParams(), seed: int = 0,
    shared: "SharedInputs | None" = None,
) -> pl.DataFrame:
    """Training pairs of the last ``days`` before the cutoff with every tower feature, rows shuffled by ``seed``.

    One row per (customer, article, day); the item's recency and price are as of the week before the
    purchase. ``item_prob`` is the article's share of the window's rows (the in-batch sampling
    probability used for the logQ correction). ``shared``: as in ``user_features``.
    """
    sales = shared.sales.as_of(week) if shared else WeeklySales.of(tables, week)
    items = item_features(tables, week, params, sales).drop(*ITEM_DYNAMIC_FEATURES)
    tx = _window(tables, week, days, shared.first if shared else None).select(
        "customer_idx",
        "article_idx",
        as_of=((pl.lit(week.cutoff) - pl.col("t_dat")).dt.total_days() - 1) // WEEK_DAYS + 1,
    )
    if tx.height == 0:
        raise ValueError(f"no transactions in the {days} days before {week.cutoff}: nothing to train the towers on")
    rng = np.random.default_rng(seed)
    tx = tx.select(pl.all().gather(rng.permutation(tx.height)))
    freq = tx.group_by("article_idx").agg(item_prob=(pl.len() / tx.height).cast(pl.Float32))
    art, as_of = tx["article_idx"].to_numpy(), tx["as_of"].to_numpy()
    # point_in_time_keys: an article (product) that had not sold before the example's week was unknown
    # then, so it gets the unknown id and the cold path trains on real launches.
    first = sales.first_week()
    product_first = (
        pl.DataFrame({"product_code": tables.articles["product_code"], "first": first})
        .with_columns(pl.col("first").max().over("product_code"))["first"].to_numpy()
    )
    return (
        tx.with_columns(item_recency=_array(sales.recency(art, as_of)), item_price=_array(sales.price(art, as_of)))
        .join(users, on="customer_idx", how="left", maintain_order="left")
        .join(items, on="article_idx", how="left", maintain_order="left")
        .join(freq, on="article_idx", how="left", maintain_order="left")
        .with_columns(
            article_key=pl.when(pl.Series(first[art] >= as_of) | (not params.point_in_time_keys)).then("article_key").otherwise(0),
            product_key=pl.when(pl.Series(product_first[art] >= as_of) | (not params.point_in_time_keys)).then("product_key").otherwise(0),
        )
        .drop("as_of")
    )


def image_matrix(image_embeddings: pl.DataFrame | None, n_articles: int) -> np.ndarray:
    """``[n_articles, 2049]`` float32: the centred 2048-d embedding (zeros without image) + a has-image flag.

    Centred, then divided by one global scale so the average row has unit norm: random-init and ImageNet
    features land on the same scale for the Dense projection, while each dimension keeps its relative
    variance (standardising every dimension would blow near-constant ones up to full weight and let the
    projection memorise articles by them, which measurably hurt never-sold articles). Rows are looked up
    by ``article_idx``; articles absent from the frame count as imageless.
    """
    from hm_recsys.retrieval.image_embeddings import EMBEDDING_DIM

    out = np.zeros((n_articles, EMBEDDING_DIM + 1), dtype=np.float32)
    if image_embeddings is None or image_embeddings.height == 0:
        return out
    for col in ("article_idx", "has_image", "embedding"):
        if col not in image_embeddings.columns:
            raise ValueError(f"image embeddings frame lacks column {col!r}")
    frame = image_embeddings.filter(pl.col("has_image"))
    idx = frame["article_idx"].to_numpy()
    if len(idx) and (idx.min() < 0 or idx.max() >= n_articles):
        raise ValueError(f"image embeddings: article_idx {int(idx.max())} outside 0..{n_articles - 1}")
    emb = frame["embedding"].to_numpy().astype(np.float64)
    if len(idx):
        centred = emb - emb.mean(axis=0)
        scale = float(np.sqrt((centred**2).mean() * EMBEDDING_DIM)) or 1.0
        out[idx, :EMBEDDING_DIM] = (centred / scale).astype(np.float32)
        out[idx, EMBEDDING_DIM] = 1.0
    return out


def _array(matrix: np.ndarray) -> pl.Series:
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    return pl.Series(values=matrix, dtype=pl.Array(pl.Float32, matrix.shape[1]))
