"""Asset checks: the contracts an artifact must meet (blocking: nothing downstream runs on a broken one)
and quality floors (warnings), visible in the UI's Checks tab.

A check of a per-week asset names its week (``for_week``): the Checks tab shows the latest result of any
partition. A floor with nothing to compare (the production week has no purchases yet) passes as ``skipped``:
Dagster has no skipped result, and an ``@asset`` must report every check it declares (only a subsettable
``multi_asset`` may leave one out, and then the UI shows no reason).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

SUBMISSION = "one_row_per_customer_12_known_articles"
CONTRACT = "candidate_contract"
KEYS = "keys_unique_and_joinable"
RECALL_FLOOR = "recall_at_least_last_week_popular"
FINAL_FLOOR = "final_at_least_best_heuristic"


def spec(asset: str, name: str, description: str, *, is_blocking: bool = True) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset=asset, blocking=is_blocking, description=description)


def submission_spec(asset: str) -> dg.AssetCheckSpec:
    return spec(asset, SUBMISSION, "Every customer exactly once, with 12 distinct article ids that exist in articles.csv.")


def check_submission(path: Path, tables) -> dg.AssetCheckResult:
    from hm_recsys.submission import read_submission

    try:
        read_submission(path, tables)  # validates the file as Kaggle would read it
    except ValueError as e:
        return dg.AssetCheckResult(check_name=SUBMISSION, passed=False, metadata={"error": str(e)})
    return dg.AssetCheckResult(check_name=SUBMISSION, passed=True, metadata={"customers": tables.n_customers})


def contract_spec(asset: str) -> dg.AssetCheckSpec:
    return spec(asset, CONTRACT, "Typed columns, no nulls, known customers and articles, distinct articles per customer, ranks from 0.")


def check_contract(frame, source: str, tables) -> dg.AssetCheckResult:
    import polars as pl

    from hm_recsys.candidates.contract import validate_candidates

    try:
        validate_candidates(frame, source)
        for col, n in (("customer_idx", tables.n_customers), ("article_idx", tables.n_articles)):
            bad = frame.filter((pl.col(col) < 0) | (pl.col(col) >= n))
            if bad.height:
                raise ValueError(f"candidates {source!r}: {col} {bad[col][0]} is outside 0..{n - 1}")
        if frame.height and frame.group_by("customer_idx").agg(pl.col("rank").min()).filter(pl.col("rank") != 0).height:
            raise ValueError(f"candidates {source!r}: some customer's best candidate is not rank 0")
    except ValueError as e:
        return dg.AssetCheckResult(check_name=CONTRACT, passed=False, metadata={"error": str(e)})
    return dg.AssetCheckResult(check_name=CONTRACT, passed=True, metadata={"rows": frame.height})


def contract_of_parts(results: list[dg.AssetCheckResult], rows: int) -> dg.AssetCheckResult:
    """``check_contract`` of a frame checked part by part (no customer in two parts): the first failing part's
    result, else passed over all ``rows``."""
    failed = next((r for r in results if not r.passed), None)
    return failed or dg.AssetCheckResult(check_name=CONTRACT, passed=True, metadata={"rows": rows})


def check_union(union, tables) -> dg.AssetCheckResult:
    import polars as pl

    problems = []
    from hm_recsys.candidates.contract import first_duplicate

    if first_duplicate(union) is not None:
        problems.append("a (customer_idx, article_idx) pair appears twice")
    for col, n in (("customer_idx", tables.n_customers), ("article_idx", tables.n_articles)):
        if union.filter((pl.col(col) < 0) | (pl.col(col) >= n)).height:
            problems.append(f"{col} outside 0..{n - 1}")
    if union.filter(pl.col("n_sources") < 1).height:
        problems.append("rows proposed by no source")
    return dg.AssetCheckResult(check_name=CONTRACT, passed=not problems,
                               metadata={"rows": union.height, "problems": "; ".join(problems) or "none"})


def check_union_buckets(union_dir: Path, tables) -> dg.AssetCheckResult:
    """``check_union`` bucket by bucket: buckets hold disjoint customers, so per-bucket checks cover the whole."""
    import polars as pl

    from hm_recsys.buckets import bucket_files

    rows, failed = 0, None
    for path in bucket_files(union_dir):
        result = check_union(pl.read_parquet(path, columns=["customer_idx", "article_idx", "n_sources"]), tables)
        rows += result.metadata["rows"].value
        if not result.passed:
            failed = f"{path.name}: {result.metadata['problems'].value}"
            break
    return dg.AssetCheckResult(check_name=CONTRACT, passed=failed is None, metadata={"rows": rows, "problems": failed or "none"})


NOTHING_TO_COMPARE = "no purchases in the week yet (the production week), nothing to compare"


def floor_result(name: str, value: float | None, floor: float | None, what: str,
                 skip_reason: str = NOTHING_TO_COMPARE) -> dg.AssetCheckResult:
    """A warning check: passes when ``value >= floor``; skipped (see the module) when either is missing."""
    if value is None or floor is None:
        return dg.AssetCheckResult(check_name=name, passed=True, severity=dg.AssetCheckSeverity.WARN,
                                   metadata={"status": "skipped", "reason": skip_reason},
                                   description=f"skipped: {skip_reason}")
    return dg.AssetCheckResult(check_name=name, passed=bool(value >= floor), severity=dg.AssetCheckSeverity.WARN,
                               metadata={"status": "passed" if value >= floor else "failed", what: float(value),
                                         "floor": float(floor)})


def for_week(results: list[dg.AssetCheckResult], week: str) -> list[dg.AssetCheckResult]:
    """The results with ``week`` first in their metadata and in their description (kept as is if already there)."""
    out = []
    for r in results:
        if "week" in r.metadata:
            out.append(r)
            continue
        out.append(dg.AssetCheckResult(
            check_name=r.check_name, asset_key=r.asset_key, passed=r.passed, severity=r.severity,
            metadata={"week": week, **r.metadata},
            description=f"week {week}: {r.description}" if r.description else f"week {week}",
        ))
    return out
