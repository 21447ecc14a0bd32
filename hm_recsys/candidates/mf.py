"""Matrix factorisation sources on recent purchases (the ``implicit`` library): ALS and BPR.

Determinism: ``implicit``'s ALS draws its initial factors from ``random_state`` and then solves every user
(and every item) row independently with conjugate gradient, so the result does not depend on how rows are
spread over threads: same data + seed -> same factors for any ``num_threads`` (checked by a test). BLAS is
held to one thread during the fit (implicit's own advice; threaded BLAS also slows it down). BPR is Hogwild
SGD: several threads update shared factors in a racy order, so a multi-threaded fit differs on every run even
with a seed (benfred/implicit#710). It is therefore fitted on one thread with a seed, by the CPU class itself
(``use_gpu=False`` in effect), which gives the same factors on every run (checked by a test).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from hm_recsys.candidates.contract import decay, empty_candidates, rank_within_customer
from hm_recsys.tables import Tables
from hm_recsys.weeks import TargetWeek, past


def interaction_matrix(
    tables: Tables, week: TargetWeek, *, days: int, half_life_days: float
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """users x items CSR of time-decayed purchase weights over the last ``days`` days.

    Returns the matrix and the customer_idx / article_idx of its rows / columns (both sorted).
    """
    weights = (
        past(tables, week, days)
        .group_by("customer_idx", "article_idx")
        .agg(weight=decay(half_life_days).sum().cast(pl.Float32))
        .collect()
    )
    users = np.unique(weights["customer_idx"].to_numpy())
    items = np.unique(weights["article_idx"].to_numpy())
    rows = np.searchsorted(users, weights["customer_idx"].to_numpy())
    cols = np.searchsorted(items, weights["article_idx"].to_numpy())
    matrix = sp.csr_matrix(
        (weights["weight"].to_numpy(), (rows, cols)), shape=(users.size, items.size), dtype=np.float32
    )
    matrix.sort_indices()
    return matrix, users, items


def als_candidates(
    tables: Tables,
    week: TargetWeek,
    customers: pl.Series | None = None,
    *,
    days: int = 180,
    half_life_days: float = 30.0,
    factors: int = 64,
    regularization: float = 0.05,
    alpha: float = 20.0,
    iterations: int = 15,
    top_n: int = 30,
    seed: int = 0,
    num_threads: int = 2,
) -> pl.DataFrame:
    """Top-``top_n`` articles by ALS score for the customers who bought in the last ``days`` days.

    Customers with no purchase in the window get no candidate (ALS has no vector for them). Articles
    already bought stay in (they are repurchase candidates too; the union merges them).
    """
    from implicit.cpu.als import AlternatingLeastSquares  # heavy import, only when the source runs

    matrix, users, items = interaction_matrix(tables, week, days=days, half_life_days=half_life_days)
    if matrix.nnz == 0:
        return empty_candidates()
    wanted = users if customers is None else np.intersect1d(users, customers.cast(pl.Int32).to_numpy())
    if wanted.size == 0:
        return empty_candidates()
    with threadpool_limits(limits=1, user_api="blas"):
        model = AlternatingLeastSquares(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            random_state=seed,
            num_threads=num_threads,
        )
        model.fit(matrix, show_progress=False)
    # Exact top-n of user . item factors (what ``model.recommend`` scores) by the retrieval stage's batched
    # top-k: 846k x 38.8k x 64 at full scale took implicit ~630 s on one core against ~75 s here.
    return _top_n(model, users, items, wanted, top_n)


def _top_n(model, users: np.ndarray, items: np.ndarray, wanted: np.ndarray, top_n: int) -> pl.DataFrame:
    """Each wanted customer's ``top_n`` items by user . item factors (what ``model.recommend`` scores)."""
    from hm_recsys.retrieval.brute_force import top_k

    rows = np.searchsorted(users, wanted)
    n = min(top_n, items.size)
    scored = top_k(np.asarray(model.user_factors)[rows], np.asarray(model.item_factors), k=n,
                   customer_idx=wanted.astype(np.int32), article_idx=items.astype(np.int32)).drop("rank")
    return rank_within_customer(scored, top_n)


als_candidates.version = 2  # the asset's code version: 2 = top-n by brute_force.top_k instead of implicit's recommend


def bpr_candidates(
    tables: Tables,
    week: TargetWeek,
    customers: pl.Series | None = None,
    *,
    days: int = 180,
    factors: int = 32,
    learning_rate: float = 0.1,
    regularization: float = 0.01,
    iterations: int = 100,
    max_samples: int = 250_000_000,
    top_n: int = 30,
    seed: int = 0,
) -> pl.DataFrame:
    """Top-``top_n`` articles by BPR score for the customers who bought in the last ``days`` days.

    BPR learns a ranking (a bought article above a sampled unbought one) rather than ALS's weighted
    reconstruction, so it proposes different articles. It reads the same matrix as ALS but only which pairs
    are non-zero (``implicit`` samples the bought pairs uniformly), so there is no decay to set. The item
    factors carry a popularity bias column, part of the score. Fitted on one thread: see the module docstring.
    The defaults had the best union recall of those tried on the demo world (2 weeks; 32 factors and rate 0.1
    beat 64 / 128 and 0.01 / 0.05; 300 iterations changed nothing, 90 or 365 days were worse).
    ``max_samples`` caps the sampled pairs (``bpr_iterations``): with the full world's 7.9M bought pairs x 100
    iterations the step took 889 s a week on one thread (2026-12-07); the demo world's 238k keep all 100.
    """
    from implicit.cpu.bpr import BayesianPersonalizedRanking  # heavy import, only when the source runs

    matrix, users, items = interaction_matrix(tables, week, days=days, half_life_days=30.0)
    if matrix.nnz == 0:
        return empty_candidates()
    wanted = users if customers is None else np.intersect1d(users, customers.cast(pl.Int32).to_numpy())
    if wanted.size == 0:
        return empty_candidates()
    model = BayesianPersonalizedRanking(factors=factors, learning_rate=learning_rate, regularization=regularization,
                                        iterations=bpr_iterations(matrix.nnz, iterations, max_samples),
                                        random_state=seed, num_threads=1)
    model.fit(matrix, show_progress=False)
    return _top_n(model, users, items, wanted, top_n)


bpr_candidates.version = 2  # 2 = iterations capped by max_samples


def bpr_iterations(bought_pairs: int, iterations: int, max_samples: int) -> int:
    """Epochs of BPR's SGD (each samples as many pairs as were bought), at most ``max_samples`` pairs in all."""
    return max(1, min(iterations, max_samples // max(bought_pairs, 1)))
