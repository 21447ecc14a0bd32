"""Exact top-k: equal to a naive full sort, deterministic ties, distinct articles, ranks 0..k-1."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from hm_recsys.retrieval import brute_force


def naive_top_k(users: np.ndarray, items: np.ndarray, k: int) -> pl.DataFrame:
    scores = users @ items.T
    rows = []
    for c in range(len(users)):
        order = np.lexsort((np.arange(len(items)), -scores[c]))[:k]  # score desc, then article asc
        rows += [(c, int(a), float(scores[c, a]), r) for r, a in enumerate(order)]
    return pl.DataFrame(rows, schema=brute_force.CANDIDATE_SCHEMA, orient="row")


@pytest.mark.parametrize("batch_bytes", [None, 4 * 53 * 3])  # one big batch, and batches of 3 customers
def test_equals_naive_full_sort_with_ties(batch_bytes):
    rng = np.random.default_rng(0)
    # small integer-valued vectors: exact float32 products and many tied scores, also across the cut
    users = rng.integers(-2, 3, (37, 4)).astype(np.float32)
    items = rng.integers(-2, 3, (53, 4)).astype(np.float32)
    items[10] = items[20] = items[30]
    got = brute_force.top_k(users, items, k=10, max_batch_bytes=batch_bytes)
    want = naive_top_k(users, items, 10)
    assert got.schema == want.schema
    assert got.equals(want)


def test_random_vectors_exact_and_well_formed():
    rng = np.random.default_rng(1)
    users = rng.standard_normal((50, 32)).astype(np.float32)
    items = rng.standard_normal((400, 32)).astype(np.float32)
    got = brute_force.top_k(users, items, k=100, customer_idx=np.arange(50) + 1000, article_idx=np.arange(400) * 2)
    assert got.height == 50 * 100
    per = got.group_by("customer_idx").agg(n=pl.len(), distinct=pl.col("article_idx").n_unique(), ranks=pl.col("rank").sort())
    assert per["n"].to_list() == [100] * 50 and per["distinct"].to_list() == [100] * 50
    assert all(r == list(range(100)) for r in per["ranks"].to_list())
    assert sorted(per["customer_idx"].to_list()) == list(range(1000, 1050))
    want = naive_top_k(users, items, 100)
    np.testing.assert_array_equal(got["article_idx"].to_numpy(), want["article_idx"].to_numpy() * 2)
    np.testing.assert_allclose(got["score"].to_numpy(), want["score"].to_numpy(), rtol=1e-5, atol=1e-5)
    assert (np.diff(got["score"].to_numpy().reshape(50, 100), axis=1) <= 0).all()


def test_k_larger_than_catalogue_and_bad_shapes():
    users = np.ones((3, 2), dtype=np.float32)
    got = brute_force.top_k(users, np.eye(2, dtype=np.float32), k=100)
    assert got.height == 6 and got["article_idx"].to_list() == [0, 1] * 3
    with pytest.raises(ValueError, match="same d"):
        brute_force.top_k(users, np.ones((4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="non-finite"):
        brute_force.top_k(np.full((1, 2), np.nan, dtype=np.float32), np.eye(2, dtype=np.float32))
