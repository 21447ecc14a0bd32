"""Ranker features for a candidate frame, all computed as of the target week's cutoff.

Every transaction is read through ``weeks.past`` (that is, ``weeks.history``), so a row
for week W only sees purchases strictly before W.start. Groups of features (prefix): ``u_`` the customer,
``a_`` / ``p_`` the article and its product, ``ca_`` / ``cp_`` / ``c_<attribute>_`` the customer's history with
this article / product / product type, colour, department..., ``ag_`` the customer's age group x article,
``x_`` ratios across customer and article, ``emb_`` embeddings, ``season_``, ``seq_`` the customer's purchase
sequence (``_sequence_features``: repurchase cycles, likeness to the last purchases; switched by ``sequence``),
plus the union's ``<source>_score`` / ``<source>_rank`` / ``n_sources``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from hm_recsys import schema
from hm_recsys.candidates.contract import KEYS
from hm_recsys.candidates.popular import customer_age_groups
from hm_recsys.tables import Tables
from hm_recsys.weeks import TargetWeek, past

WEEK_COLUMN = "week_start"
LABEL = "label"
NON_FEATURES = frozenset({*KEYS, WEEK_COLUMN, LABEL, "group_id", "score"})

# Article attributes given to the ranker as integer codes (strings are coded by sorted order).
ARTICLE_CODES = schema.ARTICLE_ATTRIBUTES
# Attributes for the customer's purchase counts and recency by attribute (``c_<attr>_n`` ...).
HISTORY_ATTRIBUTES = {
    "type": "product_type_no",
    "colour": "colour_group_code",
    "dept": "department_no",
    "garment": "garment_group_no",
    "section": "section_no",
}
CUSTOMER_CODES = ("club_member_status", "fashion_news_frequency")


def feature_columns(frame: pl.DataFrame) -> list[str]:
    """The columns a ranker learns from: everything but keys, week, label, group id and score."""
    return [c for c in frame.columns if c not in NON_FEATURES]


def _codes(frame: pl.DataFrame, cols: tuple[str, ...], prefix: str) -> dict[str, pl.Expr]:
    """Integer codes of attribute columns: integers as they are, strings by their sorted distinct values."""
    return {
        f"{prefix}{c}": (pl.col(c).rank("dense") if frame.schema[c] == pl.String else pl.col(c)).cast(pl.Int32)
        for c in cols
    }


def _pair_key(a: str, b: str) -> pl.Expr:
    """Two integer columns packed into one Int64 join key (``a`` in the high 32 bits, ``b``'s low 32 bits below):
    polars joins millions of rows on one 64-bit key about twice as fast as on two columns. Nulls stay null (never
    matched, as with the two columns); ``a`` must be non-negative and below 2**31 (the dense ids are)."""
    return pl.col(a).cast(pl.Int64) * (1 << 32) + (pl.col(b).cast(pl.Int64) & 0xFFFFFFFF)


def _join_on_pair(left: pl.LazyFrame, right: pl.LazyFrame, a: str, b: str) -> pl.LazyFrame:
    """``left.join(right, on=[a, b], how="left", maintain_order="left")``, joined on ``_pair_key(a, b)``."""
    right = right.with_columns(_k=_pair_key(a, b)).drop(a, b)
    return left.with_columns(_k=_pair_key(a, b)).join(right, on="_k", how="left", maintain_order="left").drop("_k")


def _window_count(days: int) -> pl.Expr:
    return (pl.col("days_ago") <= days).sum().cast(pl.Int32)


def _history(tables: Tables, week: TargetWeek, customers: pl.LazyFrame) -> pl.LazyFrame:
    """The past transactions of ``customers``; the range predicate lets a bucket filter the history before the join."""
    span = customers.select(lo=pl.col("customer_idx").min(), hi=pl.col("customer_idx").max()).collect().row(0)
    hist = past(tables, week)
    if span[0] is not None:
        hist = hist.filter(pl.col("customer_idx").is_between(*span))
    return hist.join(customers, on="customer_idx", how="semi")


def static_customer_features(tables: Tables) -> pl.DataFrame:
    """Age, FN / Active flags and status codes of every customer (codes need the whole table: kept per customer)."""
    return tables.customers.select(
        pl.col("customer_idx").cast(pl.Int32),
        u_age=pl.col("age").cast(pl.Float32),
        u_fn=pl.col("FN").fill_null(0).cast(pl.Int8),
        u_active=pl.col("Active").fill_null(0).cast(pl.Int8),
        **_codes(tables.customers, CUSTOMER_CODES, "u_"),
    )


def _user_features(hist: pl.LazyFrame, static: pl.LazyFrame, customers: pl.LazyFrame) -> pl.LazyFrame:
    activity = hist.group_by("customer_idx").agg(
        u_n_1w=_window_count(7),
        u_n_2w=_window_count(14),
        u_n_4w=_window_count(28),
        u_n_12w=_window_count(84),
        u_n_all=pl.len().cast(pl.Int32),
        u_n_articles=pl.col("article_idx").n_unique().cast(pl.Int32),
        u_n_days=pl.col("t_dat").n_unique().cast(pl.Int32),
        u_days_since_last=pl.col("days_ago").min(),
        u_days_since_first=pl.col("days_ago").max(),
        u_price_max=pl.col("price").max(),
        u_online_share=(pl.col("sales_channel_id") == 2).mean().cast(pl.Float32),
    )
    moments = _price_moments(hist.select("customer_idx", "price").collect()).lazy()
    activity = activity.join(moments, on="customer_idx", how="left").select(
        pl.exclude("u_price_mean", "u_price_std", "u_price_max", "u_online_share"),
        "u_price_mean", "u_price_std", "u_price_max", "u_online_share")
    counts = ["u_n_1w", "u_n_2w", "u_n_4w", "u_n_12w", "u_n_all", "u_n_articles", "u_n_days"]
    return (
        customers.join(static, on="customer_idx", how="left")
        .join(activity, on="customer_idx", how="left")
        .with_columns(pl.col(counts).fill_null(0))
    )


def _price_moments(hist: pl.DataFrame) -> pl.DataFrame:
    """``u_price_mean`` / ``u_price_std`` of each customer's prices, summed in one fixed order (numpy, one thread).

    Inside ``_user_features``' group-by, polars merged partial sums in an order that varies from call to call:
    customers with the very same prices got stds a bit apart, and one customer in 25,000 changed its std between
    two calls on the same rows, so the same data gave different feature bytes (and models)."""
    hist = hist.sort("customer_idx", maintain_order=True)
    ids, starts, counts = np.unique(hist["customer_idx"].to_numpy(), return_index=True, return_counts=True)
    if not len(ids):
        return pl.DataFrame(schema={"customer_idx": pl.Int32, "u_price_mean": pl.Float32, "u_price_std": pl.Float32})
    price = hist["price"].to_numpy().astype(np.float64)
    mean = np.add.reduceat(price, starts) / counts
    squares = np.add.reduceat((price - np.repeat(mean, counts)) ** 2, starts)
    with np.errstate(divide="ignore", invalid="ignore"):
        std = np.where(counts > 1, np.sqrt(squares / (counts - 1)), np.nan)
    return pl.DataFrame({"customer_idx": ids.astype(np.int32), "u_price_mean": mean.astype(np.float32),
                         "u_price_std": pl.Series(std.astype(np.float32), nan_to_null=True)})


def article_features(tables: Tables, hist: pl.LazyFrame) -> pl.LazyFrame:
    """Sales over 1/2/4/12 weeks, trend, days since launch (first sale) and last sale, price, buyers' age,
    product-level sales, and the attribute codes; one row per article. ``hist``: the week's ``past``."""
    hist = hist.join(
        tables.customers.lazy().select(pl.col("customer_idx").cast(pl.Int32), "age"), on="customer_idx", how="left"
    )
    recent = pl.col("days_ago") <= 28
    sales = hist.group_by("article_idx").agg(
        a_n_1w=_window_count(7),
        a_n_2w=_window_count(14),
        a_n_4w=_window_count(28),
        a_n_12w=_window_count(84),
        a_n_all=pl.len().cast(pl.Int32),
        a_buyers_1w=pl.col("customer_idx").filter(pl.col("days_ago") <= 7).n_unique().cast(pl.Int32),
        a_days_since_first=pl.col("days_ago").max(),
        a_days_since_last=pl.col("days_ago").min(),
        a_price_1w=pl.col("price").filter(pl.col("days_ago") <= 7).mean().cast(pl.Float32),
        a_price_4w=pl.col("price").filter(recent).mean().cast(pl.Float32),
        a_price_all=pl.col("price").mean().cast(pl.Float32),
        a_online_share_4w=(pl.col("sales_channel_id") == 2).filter(recent).mean().cast(pl.Float32),
        a_buyer_age_4w=pl.col("age").filter(recent).mean().cast(pl.Float32),
    )
    attrs = tables.articles.lazy().select(
        pl.col("article_idx").cast(pl.Int32), "product_code", **_codes(tables.articles, ARTICLE_CODES, "a_")
    )
    counts = ["a_n_1w", "a_n_2w", "a_n_4w", "a_n_12w", "a_n_all", "a_buyers_1w"]
    out = attrs.join(sales, on="article_idx", how="left").with_columns(pl.col(counts).fill_null(0))
    product = out.group_by("product_code").agg(
        p_n_1w=pl.col("a_n_1w").sum().cast(pl.Int32),
        p_n_4w=pl.col("a_n_4w").sum().cast(pl.Int32),
        p_n_variants=pl.len().cast(pl.Int32),
    )
    return (
        out.join(product, on="product_code", how="left")
        .with_columns(
            a_trend_1w=(pl.col("a_n_1w") / (pl.col("a_n_2w") - pl.col("a_n_1w") + 1)).cast(pl.Float32),
            a_trend_4w=(pl.col("a_n_1w") / ((pl.col("a_n_4w") - pl.col("a_n_1w")) / 3 + 1)).cast(pl.Float32),
            a_price=pl.coalesce("a_price_4w", "a_price_all"),
            a_discount=(pl.col("a_price_1w") / pl.col("a_price_all")).cast(pl.Float32),
            a_variant_share_1w=(pl.col("a_n_1w") / pl.col("p_n_1w")).fill_nan(None).cast(pl.Float32),
        )
        .drop("a_price_4w")
    )


def _article_history_attributes(tables: Tables) -> pl.DataFrame:
    return tables.articles.select(pl.col("article_idx").cast(pl.Int32), "product_code", *HISTORY_ATTRIBUTES.values())


def _cross_features(hist: pl.LazyFrame, attrs: pl.LazyFrame, pairs: pl.LazyFrame) -> pl.LazyFrame:
    attr_cols = ["product_code", *HISTORY_ATTRIBUTES.values()]
    hist = hist.join(attrs, on="article_idx", how="left")
    out = pairs.join(attrs, on="article_idx", how="left", maintain_order="left")
    article = hist.group_by(KEYS).agg(
        ca_n=pl.len().cast(pl.Int32),
        ca_n_4w=_window_count(28),
        ca_days_since=pl.col("days_ago").min(),
        ca_price_paid=pl.col("price").mean().cast(pl.Float32),
    )
    out = _join_on_pair(out, article, "customer_idx", "article_idx")
    levels = {"cp": "product_code", **{f"c_{k}": v for k, v in HISTORY_ATTRIBUTES.items()}}
    for prefix, col in levels.items():
        agg = hist.group_by("customer_idx", col).agg(
            pl.len().cast(pl.Int32).alias(f"{prefix}_n"),
            pl.col("days_ago").min().alias(f"{prefix}_days_since"),
        )
        out = _join_on_pair(out, agg, "customer_idx", col)
    counts = ["ca_n", "ca_n_4w", *(f"{p}_n" for p in levels)]
    return out.with_columns(pl.col(counts).fill_null(0)).drop(attr_cols)


def age_group_sales(tables: Tables, hist: pl.LazyFrame, days: int = 14) -> pl.DataFrame:
    """age_group, article_idx, units sold to the group in the last ``days`` days and share of the group's units.

    ``hist``: the week's ``past`` (``days_ago <= days`` is ``weeks.history``'s window of ``days`` days)."""
    return (
        hist.filter(pl.col("days_ago") <= days)
        .join(customer_age_groups(tables).lazy(), on="customer_idx", how="inner")
        .group_by("age_group", "article_idx")
        .agg(ag_n=pl.len().cast(pl.Int32))
        .with_columns(ag_share=(pl.col("ag_n") / pl.col("ag_n").sum().over("age_group")).cast(pl.Float32))
        .collect()
    )


def _age_group_features(groups: pl.LazyFrame, sold: pl.LazyFrame, pairs: pl.LazyFrame) -> pl.LazyFrame:
    return (
        pairs.join(groups, on="customer_idx", how="left", maintain_order="left")
        .join(sold, on=["age_group", "article_idx"], how="left", maintain_order="left")
        .with_columns(pl.col("ag_n").fill_null(0), pl.col("ag_share").fill_null(0.0))
        .drop("age_group")
    )


def _check_vectors(vectors: np.ndarray, n_rows: int, name: str) -> np.ndarray:
    if vectors.ndim != 2 or vectors.shape[0] != n_rows:
        raise ValueError(f"{name}: expected shape ({n_rows}, d) with row i = idx i, got {vectors.shape}")
    if not np.isfinite(vectors).all():
        row = int(np.flatnonzero(~np.isfinite(vectors).all(axis=1))[0])
        raise ValueError(f"{name}: row {row} has non-finite values")
    return np.ascontiguousarray(vectors, dtype=np.float32)


SIM_DIMS = 64  # principal axes the customer-to-article cosine is taken on
PCA_FIT_ROWS = 20_000  # PCA axes are fitted on at most this many evenly spaced rows (full scale: 105k x 2048)


def principal_components(vectors: np.ndarray, n_components: int) -> np.ndarray:
    """First ``n_components`` PCA coordinates of the rows; each axis signed so its largest loading is positive.

    scikit-learn's PCA (randomized solver for large inputs, fixed ``random_state``) is fitted on at most
    ``PCA_FIT_ROWS`` evenly spaced rows, then every row is projected: deterministic, and seconds for
    105k x 2048 image embeddings where an exact eigendecomposition takes minutes on two cores.
    """
    from sklearn.decomposition import PCA

    if not vectors.any():  # no article has an image (a world without images): every coordinate is 0
        return np.zeros((vectors.shape[0], n_components), dtype=np.float32)
    step = max(1, -(-vectors.shape[0] // PCA_FIT_ROWS))
    pca = PCA(n_components=n_components, random_state=0).fit(vectors[::step])
    axes = pca.components_
    signs = np.sign(axes[np.arange(axes.shape[0]), np.abs(axes).argmax(axis=1)])
    return ((vectors - pca.mean_) @ (axes * signs[:, None]).T).astype(np.float32)


def _normalise(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norm > 0, norm, 1.0)


def _row_dot(a: np.ndarray, a_rows: np.ndarray, b: np.ndarray, b_rows: np.ndarray) -> np.ndarray:
    """dot(a[a_rows[i]], b[b_rows[i]]) for every i, in chunks of about 2**18 gathered values per side.

    ``np.take`` rather than ``a[rows]``: the same rows, gathered ~3x faster (5.4M rows of 64 floats: 3.1 s -> 1.1 s
    for the whole call), the bulk of the similarity features' time at full scale."""
    out = np.empty(a_rows.size, dtype=np.float32)
    chunk = max(1, (1 << 18) // a.shape[1])
    for s in range(0, a_rows.size, chunk):
        np.einsum("ij,ij->i", np.take(a, a_rows[s : s + chunk], axis=0), np.take(b, b_rows[s : s + chunk], axis=0),
                  out=out[s : s + chunk])
    return out


def _embedding_features(frame: pl.DataFrame, hist: pl.LazyFrame, ctx: "FeatureContext") -> pl.DataFrame:
    """PCA components of the article's vector, its cosine to the customer's last ``recent_n`` distinct articles,
    and the two-tower dot product when user vectors are given.

    The cosine is taken between centred coordinates on the first ``SIM_DIMS`` principal axes: with 2048-d image
    embeddings the exact cosine over millions of rows costs minutes, and the leading axes carry the taste signal.
    """
    if ctx.items is None:
        return frame
    art = frame["article_idx"].to_numpy()
    cust = frame["customer_idx"].to_numpy()
    coords = ctx.coords
    pcs = np.take(coords[:, : min(ctx.n_components, coords.shape[1])], art, axis=0)  # one gather for all components
    cols: dict[str, np.ndarray] = {f"emb_pc_{i}": pcs[:, i] for i in range(pcs.shape[1])}

    recent = (
        hist.group_by("customer_idx", "article_idx")
        .agg(pl.col("days_ago").min())
        .sort(["customer_idx", "days_ago", "article_idx"])
        .filter(pl.int_range(pl.len()).over("customer_idx") < ctx.recent_n)
        .collect()
    )
    unit = _normalise(coords)
    profile_ids, profile_pos = np.unique(recent["customer_idx"].to_numpy(), return_inverse=True)
    membership = sp.csr_matrix(
        (np.ones(recent.height, dtype=np.float32), (profile_pos, recent["article_idx"].to_numpy())),
        shape=(profile_ids.size, unit.shape[0]),
    )
    profile = _normalise(np.asarray(membership @ unit, dtype=np.float32))
    sim = np.full(cust.size, np.nan, dtype=np.float32)
    if profile_ids.size:
        pos = np.minimum(np.searchsorted(profile_ids, cust), profile_ids.size - 1)
        has = profile_ids[pos] == cust
        sim[has] = _row_dot(profile, pos[has], unit, art[has])
    cols["emb_recent_sim"] = sim

    if ctx.users is not None:
        cols["emb_two_tower_dot"] = _row_dot(ctx.users, cust, ctx.items, art)
    return frame.with_columns(
        [pl.Series(name, values, dtype=pl.Float32).fill_nan(None) for name, values in cols.items()]
    )


# Attributes compared with the customer's last purchases (``seq_last_<name>``, ``seq_last3_<name>``).
SEQUENCE_ATTRIBUTES = {"product": "product_code",
                       **{k: HISTORY_ATTRIBUTES[k] for k in ("type", "colour", "dept", "garment")}}
LAST_N = 3  # the last purchases the candidate is compared with


def _mean_gap(name: str) -> pl.Expr:
    """Mean days between the group's distinct purchase days, (first - last) / (days - 1); null for one day."""
    days = pl.col("days_ago").n_unique()
    gap = (pl.col("days_ago").max() - pl.col("days_ago").min()) / (days - 1)
    return pl.when(days > 1).then(gap).cast(pl.Float32).alias(name)


def _sequence_features(hist: pl.LazyFrame, ctx: "FeatureContext", keys: pl.DataFrame) -> pl.LazyFrame:
    """The customer's purchase sequence against the candidate, on ``keys``' rows (in their order).

    ``seq_u_gap`` / ``seq_ca_gap`` / ``seq_cp_gap``: mean days between the customer's purchase days (any, of this
    article, of this product; null if bought on one day only); ``seq_*_due``: days since the last of them / that
    gap, how due a repurchase is (about 1: due; above: overdue). ``seq_ca_rank``: the article's place among the
    customer's distinct articles by last purchase (1 = the latest; null if never bought). The last purchases are
    the customer's ``LAST_N`` most recently bought distinct articles, a day's ties broken by article_idx (so the
    order never depends on row order): ``seq_last_<attr>`` is 1 where the candidate shares the latest one's
    product, product type, colour, department or garment group, ``seq_last3_<attr>`` counts matches among the
    last ``LAST_N``. The last articles stay as helper columns ``_l<r>_article_idx`` for ``_sequence_similarity``.
    """
    attrs = ctx.history_attributes.select("article_idx", *SEQUENCE_ATTRIBUTES.values())
    hist = hist.join(attrs.lazy().select("article_idx", "product_code"), on="article_idx", how="left")
    article = (
        hist.group_by(KEYS)
        .agg(_mean_gap("seq_ca_gap"), _ca_since=pl.col("days_ago").min())
        .sort("customer_idx", "_ca_since", "article_idx")
        .with_columns(seq_ca_rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over("customer_idx"))
    )
    product = hist.group_by("customer_idx", "product_code").agg(_mean_gap("seq_cp_gap"),
                                                                 _cp_since=pl.col("days_ago").min())
    last_cols = ("article_idx", *SEQUENCE_ATTRIBUTES.values())
    lasts = (
        article.filter(pl.col("seq_ca_rank") <= LAST_N)
        .join(attrs.lazy(), on="article_idx", how="left")
        .group_by("customer_idx")
        .agg(pl.col(c).filter(pl.col("seq_ca_rank") == r).first().alias(f"_l{r}_{c}")
             for r in range(1, LAST_N + 1) for c in last_cols)
    )
    customer = (
        hist.group_by("customer_idx").agg(_mean_gap("seq_u_gap"), _u_since=pl.col("days_ago").min())
        .join(lasts, on="customer_idx", how="left")
    )
    ranks = range(1, LAST_N + 1)
    same = {name: [(pl.col(c) == pl.col(f"_l{r}_{c}")).fill_null(False).cast(pl.Int8) for r in ranks]
            for name, c in SEQUENCE_ATTRIBUTES.items()}
    due = {f"seq_{p}_due": (pl.col(f"_{p}_since") / pl.col(f"seq_{p}_gap")).cast(pl.Float32) for p in ("u", "ca", "cp")}
    by_pair = pl.concat([keys, _by_index(attrs, "article_idx", keys["article_idx"])], how="horizontal").lazy()
    by_pair = _join_on_pair(by_pair, article, *KEYS)
    by_pair = _join_on_pair(by_pair, product, "customer_idx", "product_code")
    return (
        by_pair.join(customer, on="customer_idx", how="left", maintain_order="left")
        .with_columns(
            **due,
            **{f"seq_last_{name}": eq[0] for name, eq in same.items()},
            **{f"seq_last3_{name}": pl.sum_horizontal(eq).cast(pl.Int8) for name, eq in same.items()},
        )
        .select(*KEYS, "seq_u_gap", "seq_u_due", "seq_ca_rank", "seq_ca_gap", "seq_ca_due", "seq_cp_gap",
                "seq_cp_due", "^seq_last.*$", *(f"_l{r}_article_idx" for r in ranks))
    )


def _sequence_similarity(block: pl.DataFrame, ctx: "FeatureContext") -> pl.DataFrame:
    """``seq_last_sim`` / ``seq_last3_sim``: cosine of the candidate to the customer's latest distinct article and
    the mean cosine to the last ``LAST_N`` (image PCA coordinates, as ``emb_recent_sim``; absent without vectors);
    drops ``_sequence_features``' helper columns."""
    helpers = [f"_l{r}_article_idx" for r in range(1, LAST_N + 1)]
    if ctx.coords is None:
        return block.drop(helpers)
    unit = _normalise(ctx.coords)
    art = block["article_idx"].to_numpy()
    sims = np.full((LAST_N, block.height), np.nan, dtype=np.float32)
    for r, col in enumerate(helpers):
        last = block[col].fill_null(-1).to_numpy()
        has = last >= 0
        sims[r, has] = _row_dot(unit, last[has], unit, art[has])
    seen = ~np.isnan(sims)
    mean = np.where(seen, sims, 0).sum(axis=0) / np.maximum(seen.sum(axis=0), 1)
    mean[~seen[0]] = np.nan  # no last purchase: no similarity (the latest is present whenever any is)
    return block.drop(helpers).with_columns(
        pl.Series("seq_last_sim", sims[0]).fill_nan(None), pl.Series("seq_last3_sim", mean, dtype=pl.Float32).fill_nan(None)
    )


@dataclass(frozen=True, eq=False)
class FeatureContext:
    """What a week's features need beyond each customer's own history, computed once over all customers and
    articles: article features, static customer columns, age-group sales, the article-vector projection.

    Given the context, a candidate row's features depend only on its customer, its article and that customer's
    history, never on the other rows of the frame: so any split of the candidates by customer (``features_for``
    per bucket) gives exactly the rows of one pass, including features ranked or coded over everyone.
    """

    tables: Tables
    week: TargetWeek
    articles: pl.DataFrame
    customers: pl.DataFrame
    history_attributes: pl.DataFrame
    age_groups: pl.DataFrame
    age_sales: pl.DataFrame
    items: np.ndarray | None
    coords: np.ndarray | None
    users: np.ndarray | None
    n_components: int
    recent_n: int
    sequence: bool = True  # the ``seq_`` block (``_sequence_features``); training and scoring must agree


def feature_context(
    tables: Tables,
    week: TargetWeek,
    item_vectors: np.ndarray | None = None,
    user_vectors: np.ndarray | None = None,
    *,
    n_components: int = 8,
    recent_n: int = 10,
    sequence: bool = True,
) -> FeatureContext:
    """Build the week's ``FeatureContext``.

    ``item_vectors`` (n_articles x d, row i = article_idx i) and ``user_vectors`` (n_customers x d) are optional;
    ``sequence`` adds the ``seq_`` features.
    """
    items = coords = users = None
    if item_vectors is None:
        if user_vectors is not None:
            raise ValueError("user_vectors given without item_vectors: the two-tower score needs both")
    else:
        items = _check_vectors(item_vectors, tables.n_articles, "item_vectors")
        if user_vectors is not None:
            users = _check_vectors(user_vectors, tables.n_customers, "user_vectors")
            if users.shape[1] != items.shape[1]:
                raise ValueError(f"user_vectors have {users.shape[1]} dims, item_vectors {items.shape[1]}")
        coords = principal_components(items, min(max(SIM_DIMS, n_components), *items.shape))
    hist = past(tables, week).collect().lazy()  # the week's history, filtered once for both article-level frames
    return FeatureContext(
        tables=tables,
        week=week,
        articles=article_features(tables, hist).collect(),
        customers=static_customer_features(tables),
        history_attributes=_article_history_attributes(tables),
        age_groups=customer_age_groups(tables),
        age_sales=age_group_sales(tables, hist),
        items=items,
        coords=coords,
        users=users,
        n_components=n_components,
        recent_n=recent_n,
        sequence=sequence,
    )


def _check_candidates(candidates: pl.DataFrame) -> None:
    for col in KEYS:
        if col not in candidates.columns:
            raise ValueError(f"build_features: candidates lack column {col!r} (has {candidates.columns})")


def _by_index(table: pl.DataFrame, key: str, idx: pl.Series) -> pl.DataFrame:
    """``table``'s row for every value of ``idx`` (in that order), without ``key``: a gather when ``table`` holds
    every index 0..n-1 in order (the tables' dense ids), else a left join."""
    ids = table[key]
    if ids.len() and ids[0] == 0 and ids[-1] == ids.len() - 1 and ids.is_sorted() and ids.n_unique() == ids.len():
        return table.drop(key).gather(idx)
    return idx.to_frame(key).join(table, on=key, how="left", maintain_order="left").drop(key)


def features_for(ctx: FeatureContext, candidates: pl.DataFrame) -> pl.DataFrame:
    """``build_features`` of ``candidates`` with a prepared context: the per-bucket step of the bucketed path."""
    _check_candidates(candidates)
    cand = candidates.with_columns(pl.col(KEYS).cast(pl.Int32)).sort(KEYS)
    keys = cand.select(KEYS)
    customers = keys.lazy().select("customer_idx").unique()
    # One filtered read of the history, shared by the user, cross and embedding features.
    hist = _history(ctx.tables, ctx.week, customers).collect().lazy()
    week = ctx.week
    # Each block is built on the two key columns alone, in the candidates' (sorted) row order, and the blocks
    # are stacked once: joining onto the ever wider frame copied every column at each join (at full scale
    # a third of a bucket's time), and sorting 5M rows x 100 columns another third before that.
    cross = _cross_features(hist, ctx.history_attributes.lazy(), keys.lazy())
    blocks = pl.collect_all([
        _age_group_features(ctx.age_groups.lazy(), ctx.age_sales.lazy(), cross),
        keys.lazy().join(_user_features(hist, ctx.customers.lazy(), customers), on="customer_idx", how="left",
                         maintain_order="left"),
        *([_sequence_features(hist, ctx, keys)] if ctx.sequence else []),
    ])
    if ctx.sequence:
        blocks[-1] = _sequence_similarity(blocks[-1], ctx)
    out = (
        pl.concat([cand, *(b.drop(KEYS) for b in blocks), _by_index(ctx.articles, "article_idx", keys["article_idx"])],
                  how="horizontal")
        .with_columns(
            cp_other_variant=((pl.col("cp_n") > 0) & (pl.col("ca_n") == 0)).cast(pl.Int8),
            x_price_ratio=(pl.col("a_price") / pl.col("u_price_mean")).cast(pl.Float32),
            x_age_gap=(pl.col("u_age") - pl.col("a_buyer_age_4w")).cast(pl.Float32),
            x_type_share=(pl.col("c_type_n") / pl.col("u_n_all")).fill_nan(None).cast(pl.Float32),
            x_dept_share=(pl.col("c_dept_n") / pl.col("u_n_all")).fill_nan(None).cast(pl.Float32),
            season_week=pl.lit(week.start.isocalendar().week, dtype=pl.Int8),
            season_month=pl.lit(week.start.month, dtype=pl.Int8),
        )
        .drop("product_code")
        .with_columns(pl.lit(week.start).alias(WEEK_COLUMN))
    )
    for block in blocks:
        if not block.select(KEYS).equals(keys):
            raise RuntimeError("build_features: a join lost the candidates' row order (duplicate keys?)")
    out = _embedding_features(out, hist, ctx)
    first = [*KEYS, WEEK_COLUMN]
    return out.select(*first, pl.exclude(first))


def build_features(
    tables: Tables,
    week: TargetWeek,
    candidates: pl.DataFrame,
    item_vectors: np.ndarray | None = None,
    user_vectors: np.ndarray | None = None,
    *,
    n_components: int = 8,
    recent_n: int = 10,
    sequence: bool = True,
) -> pl.DataFrame:
    """The candidate frame (union of sources) with every ranker feature added, as of ``week.cutoff``.

    Keeps the candidate columns (source scores / ranks, n_sources), adds ``week_start`` (the group key with
    customer_idx) and the features; sorted by customer_idx, article_idx. ``item_vectors`` (n_articles x d,
    row i = article_idx i) and ``user_vectors`` (n_customers x d) are optional. One pass over the whole frame:
    at full scale use the bucketed path (``hm_recsys.ranking.bucketed``), which gives the same rows.
    ``sequence`` adds the ``seq_`` features (``_sequence_features``).
    """
    _check_candidates(candidates)
    ctx = feature_context(tables, week, item_vectors, user_vectors, n_components=n_components, recent_n=recent_n,
                          sequence=sequence)
    return features_for(ctx, candidates)
