"""Profile any dataset in the Kaggle schema and compare it with the real competition figures.

Works on the generated worlds and on the real 31.8M-row files alike: CSVs are scanned lazily with the
contract schema, ids are hashed to integers before anything is materialised, and every statistic is
a polars aggregation. Time-window statistics use the last 7 days of the data as "the last week".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from hm_recsys import schema

DAYS_3_MONTHS = 91
DAYS_PREVIOUS = 30
WEEKS_PROFILED = 4
TOP_POPULAR = 60
K = 12


@dataclass(frozen=True)
class Reference:
    label: str
    real: float | None      # the real data's figure (None where only a target band is known)
    band: tuple[float, float] | None
    fmt: str = "{:.4f}"


# Real figures from /work/shared/reference/hm-data-facts.md and anchors.md; bands are the calibration
# targets (None: a size, informative only).
REFERENCE: dict[str, Reference] = {
    "n_articles": Reference("articles", 105_542, None, "{:,.0f}"),
    "n_products": Reference("products (product_code)", 47_224, None, "{:,.0f}"),
    "articles_per_product": Reference("articles per product", 2.235, (1.9, 2.6), "{:.3f}"),
    "n_product_types": Reference("product_type_no values", 132, None, "{:,.0f}"),
    "detail_desc_empty_share": Reference("detail_desc empty", 416 / 105_542, (0.001, 0.01)),
    "n_customers": Reference("customers", 1_371_980, None, "{:,.0f}"),
    "fn_empty_share": Reference("FN empty", 0.652, (0.62, 0.68)),
    "active_empty_share": Reference("Active empty", 0.662, (0.63, 0.69)),
    "club_active_share": Reference("club ACTIVE", 0.927, (0.90, 0.95)),
    "club_pre_create_share": Reference("club PRE-CREATE", 0.068, (0.05, 0.09)),
    "club_left_share": Reference("club LEFT CLUB", 0.0003, (0.0, 0.002), "{:.5f}"),
    "club_empty_share": Reference("club empty", 0.004, (0.001, 0.01)),
    "news_none_share": Reference("fashion_news NONE", 0.64, (0.61, 0.67)),
    "news_regularly_share": Reference("fashion_news Regularly", 0.348, (0.32, 0.38)),
    "news_monthly_share": Reference("fashion_news Monthly", 0.0006, (0.0, 0.003), "{:.5f}"),
    "news_empty_share": Reference("fashion_news empty", 0.012, (0.005, 0.02)),
    "age_mean": Reference("age mean", 36.4, (35.0, 38.0), "{:.2f}"),
    "age_empty_share": Reference("age empty", 0.012, (0.005, 0.02)),
    "postal_codes_per_customer": Reference("distinct postal codes / customers", 352_899 / 1_371_980, (0.2, 0.32)),
    "postal_top_share": Reference("customers in the top postal code", 120_303 / 1_371_980, (0.05, 0.12)),
    "n_transactions": Reference("transaction rows", 31_788_324, None, "{:,.0f}"),
    "n_days": Reference("distinct days", 734, (730, 734), "{:,.0f}"),
    "price_mean": Reference("price mean", 0.0278, (0.024, 0.032)),
    "price_min": Reference("price min", 1.69e-5, (0.0, 1e-3), "{:.2e}"),
    "price_max": Reference("price max", 0.5915, (0.3, 0.5916)),
    "channel2_share": Reference("sales_channel_id 2 share", 0.70, (0.66, 0.74)),
    "duplicate_row_share": Reference("exact duplicate rows", 0.094, (0.08, 0.11)),
    "customers_with_tx_share": Reference("customers with a transaction", 1_362_281 / 1_371_980, (0.98, 1.0)),
    "articles_sold_share": Reference("articles with a transaction", 104_547 / 105_542, (0.97, 1.0)),
    "tx_share_ladieswear": Reference("rows: Ladieswear", 18.5 / 28.82, (0.55, 0.72)),
    "tx_share_divided": Reference("rows: Divided", 6.44 / 28.82, (0.16, 0.28)),
    "tx_share_menswear": Reference("rows: Menswear", 1.61 / 28.82, (0.03, 0.09)),
    "tx_share_sport": Reference("rows: Sport", 1.15 / 28.82, (0.02, 0.06)),
    "tx_share_baby_children": Reference("rows: Baby/Children", 1.12 / 28.82, (0.02, 0.06)),
    "inactive_3m_share": Reference("customers without a purchase in the last 3 months", 0.50, (0.45, 0.55)),
    "buyer_share_week_4": Reference("buyers / customers, 4th last week", 0.0585, (0.045, 0.065)),
    "buyer_share_week_3": Reference("buyers / customers, 3rd last week", 0.0553, (0.045, 0.065)),
    "buyer_share_week_2": Reference("buyers / customers, 2nd last week", 0.0525, (0.045, 0.065)),
    "buyer_share_week_1": Reference("buyers / customers, last week", 0.0503, (0.045, 0.065)),
    "articles_per_buyer_week": Reference("unique articles per buyer-week (last 4 weeks)", 3.15, (2.9, 3.4), "{:.3f}"),
    "buyers_active_prev30_share": Reference("week buyers who bought in the previous 30 days", 0.50, (0.45, 0.55)),
    "articles_sold_prev30_share": Reference("week's articles also sold in the previous 30 days", 0.92, (0.89, 0.95)),
    "recall_top60_last_week": Reference("recall: previous week's top-60 (last week)", 0.078, (0.06, 0.08)),
    "recall_repurchase": Reference("recall: repurchase, all history (last week)", 0.039, (0.03, 0.05)),
    "recall_same_product": Reference("recall: other article of a bought product", 0.030, (0.022, 0.038)),
    "map12_popular_all_time": Reference("MAP@12 all-time top-12", 0.003, (0.002, 0.006), "{:.5f}"),
    "map12_popular_last_week": Reference("MAP@12 previous week's top-12", None, (0.006, 0.01), "{:.5f}"),
    "map12_repurchase_then_popular": Reference("MAP@12 recent purchases, then popular", 0.022, (0.020, 0.027),
                                               "{:.5f}"),
}

_INDEX_GROUP_KEYS = {
    "Ladieswear": "tx_share_ladieswear", "Divided": "tx_share_divided", "Menswear": "tx_share_menswear",
    "Sport": "tx_share_sport", "Baby/Children": "tx_share_baby_children",
}


def _scan(path: Path, columns: dict[str, pl.DataType]) -> pl.LazyFrame:
    """Lazy scan with the contract schema, after checking the header names and order."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing (expected a Kaggle-schema CSV)")
    with open(path, "rb") as fh:
        header = fh.readline().decode("utf-8").strip().lstrip("\ufeff").split(",")
    if header != list(columns):
        raise ValueError(f"{path}: header {header} does not match the expected columns {list(columns)}")
    return pl.scan_csv(path, schema=columns)


def profile_dataset(raw_dir: str | Path) -> dict:
    """Statistics of a raw Kaggle-schema folder (articles.csv, customers.csv, transactions_train.csv).

    Returns a flat dict of numbers (keys as in REFERENCE) plus ``first_day`` / ``last_day`` strings.
    """
    raw = Path(raw_dir)
    art = _scan(raw / schema.ARTICLES_CSV, schema.ARTICLE_COLUMNS).select(
        pl.col("article_id").cast(pl.Int64).alias("art"), "product_code", "product_type_no", "index_group_name",
        "detail_desc",
    ).collect()
    cus = _scan(raw / schema.CUSTOMERS_CSV, schema.CUSTOMER_COLUMNS).collect()
    tx = _scan(raw / schema.TRANSACTIONS_CSV, schema.TRANSACTION_COLUMNS).select(
        "t_dat",
        pl.col("customer_id").hash().alias("cust"),
        pl.col("article_id").cast(pl.Int64).alias("art"),
        "price",
        "sales_channel_id",
    ).collect(engine="streaming")
    s: dict = {}
    s.update(_article_stats(art))
    s.update(_customer_stats(cus))
    s.update(_transaction_stats(tx, art, cus.height, cus.select(pl.col("customer_id").hash().alias("cust"))))
    return s


def _article_stats(art: pl.DataFrame) -> dict:
    n = art.height
    n_products = art["product_code"].n_unique()
    return {
        "n_articles": n,
        "n_products": n_products,
        "articles_per_product": n / max(n_products, 1),
        "n_product_types": art["product_type_no"].n_unique(),
        "detail_desc_empty_share": art["detail_desc"].null_count() / max(n, 1),
    }


def _share(series: pl.Series, value) -> float:
    if value is None:
        return series.null_count() / max(series.len(), 1)
    return float((series == value).sum()) / max(series.len(), 1)


def _customer_stats(cus: pl.DataFrame) -> dict:
    postal = cus["postal_code"].value_counts(sort=True)
    return {
        "n_customers": cus.height,
        "fn_empty_share": _share(cus["FN"], None),
        "active_empty_share": _share(cus["Active"], None),
        "club_active_share": _share(cus["club_member_status"], "ACTIVE"),
        "club_pre_create_share": _share(cus["club_member_status"], "PRE-CREATE"),
        "club_left_share": _share(cus["club_member_status"], "LEFT CLUB"),
        "club_empty_share": _share(cus["club_member_status"], None),
        "news_none_share": _share(cus["fashion_news_frequency"], "NONE"),
        "news_regularly_share": _share(cus["fashion_news_frequency"], "Regularly"),
        "news_monthly_share": _share(cus["fashion_news_frequency"], "Monthly"),
        "news_empty_share": _share(cus["fashion_news_frequency"], None),
        "age_mean": float(cus["age"].mean() or 0.0),
        "age_empty_share": _share(cus["age"], None),
        "postal_codes_per_customer": postal.height / max(cus.height, 1),
        "postal_top_share": float(postal["count"][0]) / max(cus.height, 1) if postal.height else 0.0,
    }


def _transaction_stats(tx: pl.DataFrame, art: pl.DataFrame, n_customers: int, customers: pl.DataFrame) -> dict:
    if tx.height == 0:
        raise ValueError("transactions_train.csv has no rows")
    first, last = tx["t_dat"].min(), tx["t_dat"].max()
    s: dict = {
        "n_transactions": tx.height,
        "first_day": str(first),
        "last_day": str(last),
        "n_days": tx["t_dat"].n_unique(),
        "price_mean": float(tx["price"].mean()),
        "price_min": float(tx["price"].min()),
        "price_max": float(tx["price"].max()),
        "n_prices": tx["price"].n_unique(),
        "channel2_share": float((tx["sales_channel_id"] == 2).mean()),
        # one 64-bit hash per row: a collision among ~32M rows is vanishingly unlikely, memory stays flat
        "duplicate_row_share": 1.0 - tx.select(pl.struct(pl.all()).hash().n_unique()).item() / tx.height,
        "customers_with_tx_share": tx["cust"].n_unique() / max(n_customers, 1),
        "articles_sold_share": tx["art"].n_unique() / max(art.height, 1),
    }
    per_article = tx.group_by("art").len().join(art.select("art", "index_group_name"), on="art", how="left")
    counts = dict(per_article.group_by("index_group_name").agg(pl.col("len").sum()).iter_rows())
    for name, key in _INDEX_GROUP_KEYS.items():
        s[key] = counts.get(name, 0) / tx.height
    recent = tx.filter(pl.col("t_dat") > last - dt.timedelta(days=DAYS_3_MONTHS))["cust"].unique()
    s["inactive_3m_share"] = 1.0 - customers["cust"].is_in(recent.implode()).sum() / max(n_customers, 1)

    pairs_total = buyers_total = 0
    active_prev, articles_prev, n_articles_week = 0, 0, 0
    for w in range(WEEKS_PROFILED, 0, -1):
        start = last - dt.timedelta(days=7 * w - 1)
        end = start + dt.timedelta(days=7)
        week = tx.filter((pl.col("t_dat") >= start) & (pl.col("t_dat") < end))
        before = tx.filter((pl.col("t_dat") >= start - dt.timedelta(days=DAYS_PREVIOUS)) & (pl.col("t_dat") < start))
        buyers = week["cust"].unique()
        sold = week["art"].unique()
        s[f"buyer_share_week_{w}"] = buyers.len() / max(n_customers, 1)
        pairs_total += week.select("cust", "art").unique().height
        buyers_total += buyers.len()
        active_prev += int(buyers.is_in(before["cust"].unique().implode()).sum())
        articles_prev += int(sold.is_in(before["art"].unique().implode()).sum())
        n_articles_week += sold.len()
    s["articles_per_buyer_week"] = pairs_total / max(buyers_total, 1)
    s["buyers_active_prev30_share"] = active_prev / max(buyers_total, 1)
    s["articles_sold_prev30_share"] = articles_prev / max(n_articles_week, 1)
    s.update(_last_week_recall_and_map(tx, art, last))
    return s


def _last_week_recall_and_map(tx: pl.DataFrame, art: pl.DataFrame, last: dt.date) -> dict:
    """Candidate-source recall and heuristic MAP@12 with the last 7 days as the target week."""
    start = last - dt.timedelta(days=6)
    hist = tx.filter(pl.col("t_dat") < start)
    truth = tx.filter(pl.col("t_dat") >= start).select("cust", "art").unique()
    if truth.height == 0 or hist.height == 0:
        return {k: 0.0 for k in ("recall_top60_last_week", "recall_repurchase", "recall_same_product",
                                 "map12_popular_all_time", "map12_popular_last_week",
                                 "map12_repurchase_then_popular")}
    prev_week = hist.filter(pl.col("t_dat") >= start - dt.timedelta(days=7))
    top_prev = prev_week.group_by("art").len().sort(["len", "art"], descending=[True, False])["art"]
    top_all = hist.group_by("art").len().sort(["len", "art"], descending=[True, False])["art"]
    bought = hist.select("cust", "art").unique()
    products = art.select("art", "product_code")
    bought_products = bought.join(products, on="art").select("cust", "product_code").unique()
    truth_p = truth.join(products, on="art", how="left")
    same_product = truth_p.join(bought_products, on=["cust", "product_code"], how="semi") \
                          .join(bought, on=["cust", "art"], how="anti")
    n = truth.height
    out = {
        "recall_top60_last_week": float(truth["art"].is_in(top_prev.head(TOP_POPULAR).implode()).sum()) / n,
        "recall_repurchase": truth.join(bought, on=["cust", "art"], how="semi").height / n,
        "recall_same_product": same_product.height / n,
    }
    buyers = truth.select("cust").unique()
    out["map12_popular_all_time"] = map_at_k(_same_for_all(buyers, top_all.head(K)), truth)
    out["map12_popular_last_week"] = map_at_k(_same_for_all(buyers, top_prev.head(K)), truth)
    recent = (
        hist.join(buyers, on="cust", how="semi")
        .group_by("cust", "art").agg(pl.col("t_dat").max().alias("last"), pl.len().alias("n"))
        .sort(["cust", "last", "n", "art"], descending=[False, True, True, False])
        .with_columns(pl.int_range(pl.len()).over("cust").alias("rank"))
        .filter(pl.col("rank") < K)
        .select("cust", "art", "rank")
    )
    fill = _same_for_all(buyers, top_prev.head(2 * K)).with_columns(pl.col("rank") + K)
    combined = (
        pl.concat([recent, fill.join(recent, on=["cust", "art"], how="anti")])
        .sort(["cust", "rank"])
        .with_columns(pl.int_range(pl.len()).over("cust").alias("rank"))
        .filter(pl.col("rank") < K)
    )
    out["map12_repurchase_then_popular"] = map_at_k(combined, truth)
    return out


def _same_for_all(buyers: pl.DataFrame, articles: pl.Series) -> pl.DataFrame:
    ranked = pl.DataFrame({"art": articles, "rank": pl.int_range(articles.len(), eager=True)})
    return buyers.join(ranked, how="cross")


def map_at_k(pred: pl.DataFrame, truth: pl.DataFrame, k: int = K) -> float:
    """Kaggle MAP@k over the customers in ``truth``; ``pred`` has cust, art, rank (0-based)."""
    n_true = truth.group_by("cust").agg(pl.len().alias("n_true"))
    hits = (
        pred.filter(pl.col("rank") < k)
        .join(truth, on=["cust", "art"], how="semi")
        .sort(["cust", "rank"])
        .with_columns((pl.int_range(pl.len()).over("cust") + 1).alias("hit_no"))
        .with_columns((pl.col("hit_no") / (pl.col("rank") + 1)).alias("precision"))
        .group_by("cust").agg(pl.col("precision").sum())
        .join(n_true, on="cust")
        .select((pl.col("precision") / pl.min_horizontal(pl.col("n_true"), pl.lit(k))).sum())
    )
    return float(hits.item() or 0.0) / max(n_true.height, 1)


def format_profile(stats: dict) -> str:
    """A text table: each statistic beside the real figure, the calibration band and an in-band flag."""
    rows = [("statistic", "this dataset", "real H&M", "band", "in band")]
    for key, ref in REFERENCE.items():
        if key not in stats:
            continue
        value = stats[key]
        real = ref.fmt.format(ref.real) if ref.real is not None else "n/a"
        if ref.band is None:
            band, flag = "-", "-"
        else:
            lo, hi = ref.band
            band = f"{ref.fmt.format(lo)}..{ref.fmt.format(hi)}"
            flag = "yes" if lo <= value <= hi else "NO"
        rows.append((ref.label, ref.fmt.format(value), real, band, flag))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [f"dates {stats.get('first_day', '?')} .. {stats.get('last_day', '?')}"]
    for i, r in enumerate(rows):
        lines.append("  ".join(c.ljust(widths[j]) if j == 0 else c.rjust(widths[j]) for j, c in enumerate(r)))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    flagged = [r for r in rows[1:] if r[4] in ("yes", "NO")]
    ok = sum(r[4] == "yes" for r in flagged)
    lines.append(f"{ok} of {len(flagged)} banded statistics in band")
    return "\n".join(lines)
