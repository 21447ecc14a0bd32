"""The small-data guard: the ranker's order blended with the repurchase-then-popular heuristic's, per customer.

On a week with a few hundred buyers the ranker's MAP@12 is dominated by noise (training seeds move it by
~10% on the tiny world) and can fall below the heuristic it receives as features. The heuristic's order is
already in every candidate row (the union keeps each source's rank), so ``final`` can fall back on it without
new inputs. Each candidate scores ``(1 - w) / (1 + model_rank) + w / (1 + heuristic_rank)`` (weighted reciprocal
rank fusion; a candidate the heuristic does not list adds nothing): a blend of ranks themselves would give such a
candidate the heuristic's worst rank, and even w = 0.25 then pushed the model's top picks from other sources out
of the top 12 (tiny world 4: MAP@12 0.073 -> 0.047). ``w`` is chosen by tuning on the held-out newest
*training* week (``choose_blend``), never on the week being predicted: ``w = 0`` is the ranker alone (exactly
``ranker.top_k``), ``w = 1`` the heuristic's order with the model ordering only what the heuristic leaves out.

The choice follows the one-standard-error rule (Hastie, Tibshirani, Friedman, *Elements of Statistical Learning*
7.10): the smallest weight whose held-out MAP@12 is within one standard error of the best weight's. On a week of
~150 buyers the held-out optimum is mostly noise, and the held-out model learns from one week fewer than
``final``'s, so it leans on the heuristic more than ``final`` should: taking the held-out argmax chose w = 0.5 on
every training seed of tiny world 2 and cost 25% of its target-week MAP@12 (benchmarks/small_data.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from hm_recsys.candidates.contract import KEYS
from hm_recsys.metrics import K, relevant_sets

BLEND_WEIGHTS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
# baselines.repurchase_popular's order: the repurchase list, then other colours of bought products, then last
# week's best sellers: the fill list (``baselines.popular_articles``, by buyers) when given, else the union's
# ``popular`` source (by units sold, so an order slightly off the baseline's).
HEURISTIC_RANKS: tuple[str, ...] = ("repurchase_rank", "same_product_rank", "popular_rank")
# How many best sellers the blend's popular tier ranks (``popular_articles(..., n=POPULAR_DEPTH)``): as deep as
# the union's popular source; its first 12 are the fill list, so the heuristic's top-12 is the baseline's.
POPULAR_DEPTH = 60


@dataclass(frozen=True)
class BlendChoice:
    weight: float
    maps: dict[float, float]  # MAP@12 on the held-out week per weight tried
    standard_errors: dict[float, float]  # of each weight's MAP@12 minus the best one's (paired over buyers)


def heuristic_rank(frame: pl.DataFrame, popular: list[int] | None = None) -> pl.Expr:
    """Each row's place in its customer's repurchase-then-popular order (0 = first), null where none of the
    heuristic's lists holds it. ``popular``: the best sellers, best first (``popular_articles(...,
    n=POPULAR_DEPTH)``: the order is then ``baselines.repurchase_popular``'s exactly); None: the ``popular_rank`` column."""
    tiers = [pl.col(c) for c in HEURISTIC_RANKS[:2] if c in frame.columns]
    if popular is not None:
        order = dict(zip(dict.fromkeys(popular), range(len(popular))))
        tiers.append(pl.col("article_idx").replace_strict(order, default=None, return_dtype=pl.Int64))
    elif HEURISTIC_RANKS[2] in frame.columns:
        tiers.append(pl.col(HEURISTIC_RANKS[2]))
    # one sortable key: the first list a row is on, its rank there (< 2**16), then article_idx (< 2**31)
    key = pl.coalesce([pl.when(t.is_not_null()).then((i * 2**16 + t.cast(pl.Int64)) * 2**31)
                       for i, t in enumerate(tiers)] + [pl.lit(None, pl.Int64)]) + pl.col("article_idx").cast(pl.Int64)
    return (key.rank("ordinal").over("customer_idx") - 1).cast(pl.Float64)  # null keys stay null


def blend_top_k(scored: pl.DataFrame, weight: float, popular: list[int] | None = None, k: int = K) -> pl.DataFrame:
    """``ranker.top_k`` of ``scored`` (rows with ``score`` and the ``HEURISTIC_RANKS`` columns) after blending
    the model's order with the heuristic's (``heuristic_rank``) by ``weight``; ties go to the model's order, so
    the result is deterministic and ``weight`` 0 gives ``top_k`` exactly."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"blend weight must be in [0, 1], got {weight}")
    rows = scored.select(*KEYS, "score", *(c for c in HEURISTIC_RANKS if c in scored.columns))
    rows = rows.unique(subset=KEYS, keep="first").sort(["customer_idx", "score", "article_idx"],
                                                         descending=[False, True, False])
    rows = rows.with_columns(_model=pl.int_range(pl.len()).over("customer_idx").cast(pl.Float64))
    if weight > 0:
        rows = rows.with_columns(_heur=heuristic_rank(rows, popular)).with_columns(
            _blend=(1 - weight) / (1 + pl.col("_model")) + (weight / (1 + pl.col("_heur"))).fill_null(0.0))
        rows = rows.sort(["customer_idx", "_blend", "_model"], descending=[False, True, False])
    return (
        rows.with_columns(rank=pl.int_range(pl.len()).over("customer_idx").cast(pl.Int16))
        .filter(pl.col("rank") < k)
        .select(pl.col(KEYS).cast(pl.Int32), "rank")
    )


def average_precisions(recommendations: pl.DataFrame, purchases: pl.DataFrame, k: int = K) -> pl.Series:
    """AP@k of each buyer of ``purchases``, in customer order (0 without a hit): their mean is ``metrics.map_at_k``."""
    truth = relevant_sets(purchases)
    hits = (
        recommendations.filter(pl.col("rank") < k).join(truth, on=KEYS, how="inner").sort("customer_idx", "rank")
        .with_columns(precision=(pl.int_range(pl.len()).over("customer_idx") + 1) / (pl.col("rank") + 1))
        .group_by("customer_idx").agg(pl.col("precision").sum())
    )
    return (truth.group_by("customer_idx").len().join(hits, on="customer_idx", how="left").sort("customer_idx")
            .select(pl.col("precision").fill_null(0.0) / pl.min_horizontal(pl.col("len"), pl.lit(k)))
            .to_series().rename("ap"))


def choose_blend(scored: pl.DataFrame, purchases: pl.DataFrame, weights: tuple[float, ...] = BLEND_WEIGHTS,
                 popular: list[int] | None = None, k: int = K) -> BlendChoice:
    """The blend weight for ``final``, chosen on ``scored`` (the held-out training week's candidates scored by the
    tuned model) against ``purchases`` (that week's buyer-article pairs); ``popular``: that week's fill list (see
    ``heuristic_rank``). The smallest weight within one standard error of the best MAP@k (the module docstring):
    the ranker is kept unless the heuristic does clearly better on data the model may see."""
    if not weights:
        raise ValueError("choose_blend: no weight to try")
    aps = {float(w): average_precisions(blend_top_k(scored, w, popular, k), purchases, k) for w in sorted(weights)}
    maps = {w: float(ap.mean()) for w, ap in aps.items()}
    best = max(maps, key=lambda w: (maps[w], -w))
    errors = {w: float((ap - aps[best]).std() or 0.0) / len(ap) ** 0.5 for w, ap in aps.items()}
    return BlendChoice(weight=min(w for w in maps if maps[w] >= maps[best] - errors[w]), maps=maps,
                       standard_errors=errors)
