"""Score a week's submission files: the report behind ``reports/<week>/metrics.json``."""

from __future__ import annotations

from pathlib import Path

from hm_recsys import metrics, submission
from hm_recsys.tables import Tables
from hm_recsys.weeks import TargetWeek, labels


def score_week(tables: Tables, week_key: str, files: dict[str, Path]) -> dict:
    """MAP@12 of every submission file that exists; an empty ``map12`` when the week has no buyers yet."""
    week = TargetWeek.from_key(week_key)
    truth = labels(tables.transactions, week)
    buyers = truth["customer_idx"].n_unique()
    scores: dict[str, float] = {}
    if buyers:
        for name, path in files.items():
            if Path(path).exists():
                scores[name] = metrics.map_at_k(submission.read_submission(path, tables), truth)
    return {"week": week.key, "buyers": buyers, "map12": scores}


def candidate_recall(tables: Tables, week_key: str, two_tower: Path, union_dir: Path) -> dict:
    """Recall of the week's candidate sets against its purchases, from the files as written (buyers' rows only).

    ``two_tower``: recall@k of the towers' top-k (k: the file's ranks), beside ``last_week_popular`` (the k best
    sellers of the week before, for every buyer: the floor the towers should reach) and ``cold_start``
    (``cold_start_recall``); ``sources``: each source's and the union's recall, read from the union's buckets
    (a source's rows are the union rows with its rank set). Empty for a week without purchases; a part whose
    file is missing is left out. The evaluation asset calls it: it is the one that declares the labels.
    """
    import polars as pl

    from hm_recsys.buckets import bucket_files
    from hm_recsys.candidates.popular import best_sellers
    from hm_recsys.retrieval.cold_start import cold_start_recall

    week = TargetWeek.from_key(week_key)
    truth = labels(tables.transactions, week)
    if not truth.height:
        return {}
    buyers = truth.select("customer_idx").unique()
    out: dict = {}
    if Path(two_tower).is_file():
        top = pl.scan_parquet(two_tower).select(pl.col("rank").max()).collect().item()
        if top is not None:
            k = int(top) + 1
            cands = pl.scan_parquet(two_tower).join(buyers.lazy(), on="customer_idx", how="semi").collect()
            popular = buyers.join(best_sellers(tables, week, days=7, top_n=k).select("article_idx"), how="cross")
            out |= {"k": k, "two_tower": metrics.recall_at_k(cands, truth, k), "last_week_popular": metrics.recall(popular, truth),
                    "cold_start": cold_start_recall(cands, tables, week, k=k)}
    if Path(union_dir).is_dir():
        relevant = metrics.relevant_sets(truth)
        hits: dict[str, int] = {"union": 0}
        for path in bucket_files(union_dir):
            ranks = [c for c in pl.read_parquet_schema(path) if c.endswith("_rank")]
            found = relevant.join(pl.read_parquet(path, columns=["customer_idx", "article_idx", *ranks]),
                                  on=["customer_idx", "article_idx"], how="inner")  # union keys are unique
            hits["union"] += found.height
            for c in ranks:
                hits[c.removesuffix("_rank")] = hits.get(c.removesuffix("_rank"), 0) + int(found[c].is_not_null().sum())
        out["sources"] = {name: n / relevant.height for name, n in hits.items()}
    return out


def recall_metrics(recall: dict) -> dict[str, float]:
    """``candidate_recall``'s numbers as flat names: ``recall@100/two_tower``, ``cold_start/share``, ``recall/union``."""
    flat = {f"recall@{recall['k']}/{n}": recall[n] for n in ("two_tower", "last_week_popular") if n in recall}
    flat |= {f"cold_start/{k}": v for k, v in recall.get("cold_start", {}).items() if isinstance(v, (int, float))}
    return flat | {f"recall/{n}": v for n, v in recall.get("sources", {}).items()}


def scored_weeks(reports: list[dict]) -> list[dict]:
    """MAP@12 per week and recommender: one row per scored report (a week with buyers), newest week first.

    Columns: ``week``, ``buyers``, then the recommenders ordered by the newest week's MAP@12 (best first);
    a recommender a week did not score is ``None`` there.
    """
    scored = sorted((r for r in reports if r["map12"]), key=lambda r: r["week"], reverse=True)
    if not scored:
        return []
    newest = scored[0]["map12"]
    names = sorted({n for r in scored for n in r["map12"]}, key=lambda n: (n not in newest, -newest.get(n, 0.0), n))
    return [{"week": r["week"], "buyers": r["buyers"], **{n: r["map12"].get(n) for n in names}} for r in scored]
