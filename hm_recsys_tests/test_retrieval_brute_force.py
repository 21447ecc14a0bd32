"""Exact top-k: equal to a naive full sort, deterministic ties, distinct articles, ranks 0..k-1."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from hm_recsys.retrieval import brute_force, tf_env


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


def _scores(kind: str, n_rows: int, n_cols: int):
    torch = tf_env.torch()
    rng = np.random.default_rng(7)
    if kind == "gaussian":
        return torch.from_numpy(rng.standard_normal((n_rows, n_cols), dtype=np.float32))
    if kind == "integers":  # few distinct values: ties everywhere, also at every cut
        return torch.from_numpy(rng.integers(-40, 40, (n_rows, n_cols)).astype(np.float32))
    # duplicated columns: identical articles score identically for every customer
    base = rng.standard_normal((n_rows, n_cols), dtype=np.float32)
    base[:, 1::3] = base[:, 0::3][:, : base[:, 1::3].shape[1]]
    return torch.from_numpy(base)


@pytest.mark.parametrize("kind", ["gaussian", "integers", "duplicates"])
@pytest.mark.parametrize("k,n_cols", [(100, 60_001), (7, 3_000), (1, 1_000)])
def test_grouped_selection_equals_full_deterministic_topk(kind, k, n_cols, monkeypatch):
    """The shortlist gives exactly the full sort's answer (same scores: no float slack), ties included."""
    torch = tf_env.torch()
    scores = _scores(kind, 48, n_cols)
    want_vals, want_idx = brute_force._deterministic_topk(torch, scores, k)
    full_rows = []
    real = brute_force._deterministic_topk

    def spy(torch_, s, k_):
        if s.shape[1] == n_cols:
            full_rows.append(s.shape[0])
        return real(torch_, s, k_)

    monkeypatch.setattr(brute_force, "_deterministic_topk", spy)
    padded = torch.cat([scores, torch.zeros((48, (-n_cols) % brute_force.GROUP))], dim=1)
    got_vals, got_idx = brute_force._grouped_topk(torch, padded, k, n_cols)
    assert torch.equal(got_idx, want_idx) and torch.equal(got_vals, want_vals)
    if kind == "gaussian":  # no ties: the shortlist answers every row, no full-row fallback
        assert full_rows == []
    if kind == "integers":  # ties at the group cut: the fallback runs, and is still exact
        assert sum(full_rows) > 0


def test_catalogue_scale_many_batches_and_workers():
    """Full pipeline on a catalogue large enough for two shortlist levels, many batches over the workers."""
    torch = tf_env.torch()
    rng = np.random.default_rng(3)
    users = rng.standard_normal((90, 16)).astype(np.float32)
    items = rng.standard_normal((9_000, 16)).astype(np.float32)
    items[5000:5010] = items[17]  # identical articles: tied scores for every customer
    users[3] = 0.0  # every score 0: the whole catalogue ties, answer is articles 0..99
    threads = torch.get_num_threads()
    got = brute_force.top_k(users, items, k=100, max_batch_bytes=4 * 9_008 * 7)
    assert torch.get_num_threads() == threads
    want = naive_top_k(users, items, 100)
    np.testing.assert_array_equal(got["article_idx"].to_numpy(), want["article_idx"].to_numpy())
    np.testing.assert_allclose(got["score"].to_numpy(), want["score"].to_numpy(), rtol=1e-5, atol=1e-5)
    assert got.filter(pl.col("customer_idx") == 3)["article_idx"].to_list() == list(range(100))


@pytest.mark.parametrize("part_customers", [1, 7, 50, 1000])
def test_parts_concatenated_are_top_k_and_stream_to_one_parquet(part_customers, tmp_path):
    """The retrieval step writes its candidates part by part (never 1.37M x 100 rows at once): the parts, in
    order, are ``top_k``'s frame, and the file they stream into reads back as that frame."""
    from hm_recsys import io

    rng = np.random.default_rng(4)
    users = rng.integers(-2, 3, (50, 4)).astype(np.float32)  # ties across the cut
    items = rng.integers(-2, 3, (300, 4)).astype(np.float32)
    ids = np.arange(50)[::-1] + 7  # parts keep the rows' order, whatever their ids
    whole = brute_force.top_k(users, items, k=20, customer_idx=ids)
    parts = list(brute_force.top_k_parts(users, items, k=20, customer_idx=ids, part_customers=part_customers))
    assert [p.height for p in parts] == [20 * min(part_customers, 50 - i) for i in range(0, 50, part_customers)]
    assert pl.concat(parts).equals(whole)
    path = tmp_path / "two_tower.parquet"
    with io.parquet_parts(path, brute_force.CANDIDATE_SCHEMA) as write:
        for part in parts:
            write(part)
    assert pl.read_parquet(path).equals(whole)
    with pytest.raises(ValueError, match="schema"), io.parquet_parts(tmp_path / "bad.parquet", brute_force.CANDIDATE_SCHEMA) as write:
        write(parts[0].drop("rank"))
    assert list(tmp_path.iterdir()) == [path]  # a failed write publishes nothing and leaves no temporary
    with pytest.raises(ValueError, match="part_customers"):
        next(brute_force.top_k_parts(users, items, part_customers=0))
