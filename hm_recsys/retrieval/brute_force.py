"""Exact top-k retrieval: every customer against every article by batched matrix products.

Why exact: 1.37M x 105k scores is ~1.4e11 dot products of 32-d vectors (9.3 TFLOP), affordable in batches
(benchmarks/topk_full_scale.py), so no approximate index and its recall loss are needed. Ties are broken
deterministically (higher score first, then smaller ``article_idx``), so reruns give the same candidates.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import numpy as np
import polars as pl

from hm_recsys.retrieval import tf_env
from hm_recsys.retrieval import tfrecords as tfr

CANDIDATE_SCHEMA = {"customer_idx": pl.Int32, "article_idx": pl.Int32, "score": pl.Float32, "rank": pl.Int16}


def _tower_inputs(frame: pl.DataFrame, start: int, end: int) -> dict:
    part = frame.slice(start, end - start)
    out = {}
    for name, dtype in part.schema.items():
        if dtype.is_integer():
            out[name] = part[name].to_numpy().astype(np.int64)
        elif isinstance(dtype, pl.Array):
            out[name] = np.ascontiguousarray(part[name].to_numpy(), dtype=np.float32)
    return out


def _tower_outputs(tower, frame: pl.DataFrame, batch_size: int) -> np.ndarray:
    tf, _ = tf_env.tensorflow()
    call = tf.function(lambda f: tower(f, training=False))
    parts = []
    with tf.device(tf_env.tf_device()):
        for start in range(0, frame.height, batch_size):
            inputs = _tower_inputs(frame, start, min(start + batch_size, frame.height))
            parts.append(call({k: tf.constant(v) for k, v in inputs.items()}).numpy())
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 0), dtype=np.float32)


def user_embeddings(model, users: pl.DataFrame, batch_size: int = 65536) -> np.ndarray:
    """``[n_customers, d]`` query vectors in ``users`` row order (the user-tower features frame)."""
    return _tower_outputs(model.user_tower, users, batch_size)


def item_embeddings(model, items: pl.DataFrame, batch_size: int = 65536) -> np.ndarray:
    """``[n_articles, d]`` candidate vectors in ``items`` row order (the item-tower features frame)."""
    return _tower_outputs(model.item_tower, items, batch_size)


def embeddings_frame(key: str, ids: np.ndarray, vectors: np.ndarray) -> pl.DataFrame:
    """``key`` (Int32) + ``embedding`` (Array Float32) for Parquet export and the ranker's similarity features."""
    return pl.DataFrame(
        {key: np.asarray(ids, dtype=np.int32), "embedding": pl.Series(values=np.ascontiguousarray(vectors, dtype=np.float32),
                                                                      dtype=pl.Array(pl.Float32, vectors.shape[1]))}
    )


def export_embeddings(
    model_dir: str | os.PathLike, tfrecords_dir: str | os.PathLike, image_embeddings: pl.DataFrame | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(customer vectors, article vectors)`` of a saved model, every customer / article as of the cutoff.

    ``image_embeddings``: the frame the model was trained with, when it uses images (see ``load_model``).
    """
    from hm_recsys.retrieval.two_tower import load_model

    model, _ = load_model(model_dir, tfrecords_dir, image_embeddings)
    users, items = tfr.load_serving_features(tfrecords_dir)
    return (
        embeddings_frame("customer_idx", users["customer_idx"].to_numpy(), user_embeddings(model, users)),
        embeddings_frame("article_idx", items["article_idx"].to_numpy(), item_embeddings(model, items)),
    )


def _deterministic_topk(torch, scores, k: int):
    """Top-``k`` of each row ordered by (score desc, column asc), exact even when ties straddle the cut.

    A tie can only straddle the cut when the (k+1)-th largest score equals the k-th, so one ``topk`` of
    k+1 finds the rows to redo (rare: identical embeddings, e.g. never-sold twins) without a full pass.
    """
    n_cols = scores.shape[1]
    vals, idx = torch.topk(scores, min(k + 1, n_cols), dim=1, largest=True, sorted=True)
    if n_cols > k:
        ambiguous = torch.nonzero(vals[:, k] == vals[:, k - 1]).flatten()
        vals, idx = vals[:, :k], idx[:, :k]
        if len(ambiguous):
            # which tied columns made the cut was up to topk: take the smallest column numbers instead
            sub = scores[ambiguous]
            sub_kth = vals[ambiguous, k - 1 :]
            n_greater = (sub > sub_kth).sum(dim=1, keepdim=True)
            tie = sub == sub_kth
            take = (sub > sub_kth) | (tie & (torch.cumsum(tie.to(torch.int64), dim=1) <= (k - n_greater)))
            cols = torch.nonzero(take)[:, 1].reshape(len(ambiguous), k)
            idx[ambiguous] = cols
            vals[ambiguous] = torch.gather(sub, 1, cols)
    # order: columns ascending, then a stable sort by score descending keeps ascending columns within ties
    idx, order = torch.sort(idx, dim=1)
    vals = torch.gather(vals, 1, order)
    vals, order = torch.sort(vals, dim=1, descending=True, stable=True)
    idx = torch.gather(idx, 1, order)
    return vals, idx


# Group size of the shortlist. Cost per row ~ n / GROUP (group maxima, then their top-k, recursively)
# + k * GROUP (the chosen groups' members); benchmarks/topk_full_scale.py measured 16 best for n = 105k.
GROUP = 16


def _sorted_survivors(torch, values, threshold, k: int, ordered: bool):
    """Top-``k`` of each row's ``values >= threshold`` by value desc (ties: column asc if ``ordered``).

    Every row must have >= k survivors.
    Why: only ~k of the ``k * GROUP`` shortlisted scores reach the threshold, so compacting them first
    and sorting ~k values is several times cheaper than ``topk`` over the whole shortlist.
    """
    n_rows = values.shape[0]
    keep = values >= threshold
    counts = keep.sum(dim=1)
    width = int(counts.max())
    rows, cols = torch.nonzero(keep, as_tuple=True)  # row-major: columns ascending within a row
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(len(rows), device=values.device) - starts[rows]
    packed_vals = torch.full((n_rows, width), float("-inf"), dtype=values.dtype, device=values.device)
    packed_cols = torch.zeros((n_rows, width), dtype=torch.int64, device=values.device)
    packed_vals[rows, slot] = values[rows, cols]
    packed_cols[rows, slot] = cols
    vals, order = torch.sort(packed_vals, dim=1, descending=True, stable=ordered)  # stable: ties keep column order
    return vals[:, :k], torch.gather(packed_cols, 1, order[:, :k])


def _grouped_topk(torch, scores, k: int, n_valid: int | None = None, ordered: bool = True):
    """Same result as ``_deterministic_topk(scores[:, :n_valid], k)``, touching most scores only once.

    Why: ``torch.topk`` over 105k columns costs more than the matrix product that made them. Columns are
    split into ``G`` strided groups (group ``j`` = columns ``j, j+G, j+2G, ...``, so the group maxima are a
    vectorised max over ``GROUP`` contiguous slices). The k-th largest group maximum ``t`` is a lower bound
    of the k-th largest score (k distinct columns reach it), so every score >= the true k-th lies in a group
    whose maximum is >= ``t``: exactly the top-k groups, unless the (k+1)-th group maximum ties ``t`` (then
    the row is redone in full). The top-k groups come from this same function on the ``[B, G]`` maxima;
    their members are gathered in ascending column order and those >= ``t`` sorted, so ties still break to
    the smaller column. ``scores``' padding columns (``n_valid`` onwards) are overwritten. ``ordered=False``
    (the recursion) still returns the exact top-k values, sorted, but any of the tied columns.
    """
    n_rows, width = scores.shape
    n = width if n_valid is None else n_valid
    n_groups = -(-n // GROUP)
    if n_groups <= 2 * (k + 1):  # too few groups for the shortlist to pay off
        if ordered:
            return _deterministic_topk(torch, scores[:, :n], k)
        return torch.topk(scores[:, :n], k, dim=1, sorted=True)
    padded = GROUP * n_groups
    if width < padded:
        scores = torch.nn.functional.pad(scores[:, :n], (0, padded - n), value=float("-inf"))
    elif padded > n:
        scores[:, n:padded] = float("-inf")  # group j's first member is column j < n: no group is all padding
    strided = scores[:, :padded].view(n_rows, GROUP, n_groups)
    group_max = strided.amax(dim=1)
    gvals, groups = _grouped_topk(torch, group_max, k + 1, ordered=False)
    chosen = torch.sort(groups[:, :k], dim=1).values if ordered else groups[:, :k].contiguous()
    members = torch.gather(strided, 2, chosen.unsqueeze(1).expand(n_rows, GROUP, k)).reshape(n_rows, GROUP * k)
    vals, pos = _sorted_survivors(torch, members, gvals[:, k - 1 : k], k, ordered)
    offset = torch.arange(GROUP, device=scores.device, dtype=chosen.dtype) * n_groups
    idx = torch.gather(chosen, 1, pos % k) + torch.gather(offset, 0, (pos // k).flatten()).view_as(pos)
    redo = torch.nonzero(gvals[:, k] == gvals[:, k - 1]).flatten()
    if len(redo):
        vals[redo], idx[redo] = _deterministic_topk(torch, scores[redo, :n], k)
    return vals, idx


# Customers per part of ``top_k_parts``: 131k x k=100 = 13M rows (~190 MB as a frame). Why parts: all 1.37M
# customers' 137M rows held at once (plus the copies a filter or a check makes) were 1.3 GiB of the retrieval
# step's 10.9 (benchmarks/results/2026-12-07_step_memory_full.txt), and grow with customers x k.
PART_CUSTOMERS = 1 << 17


def top_k_parts(
    user_vectors: np.ndarray,
    item_vectors: np.ndarray,
    k: int = 100,
    customer_idx: np.ndarray | None = None,
    article_idx: np.ndarray | None = None,
    device: str | None = None,
    max_batch_bytes: int | None = None,
    part_customers: int = PART_CUSTOMERS,
) -> Iterator[pl.DataFrame]:
    """Exact top-``k`` articles per customer by float32 dot product; ``rank`` 0 = best, ties to the smaller article.

    Yields ``customer_idx, article_idx, score, rank`` frames of ``part_customers`` customers each, in the rows'
    order, each sorted by customer then rank: concatenated, ``top_k``'s frame. ``customer_idx`` / ``article_idx``
    name the rows of the two matrices (default 0..n-1). Customers are scored in batches whose score matrix stays
    under ``max_batch_bytes`` (16 MiB on CPU, 2 GiB on CUDA), one worker thread per torch thread on CPU; the
    selection is ``_grouped_topk``.
    """
    torch = tf_env.torch()
    user_vectors = np.ascontiguousarray(user_vectors, dtype=np.float32)
    item_vectors = np.ascontiguousarray(item_vectors, dtype=np.float32)
    if user_vectors.ndim != 2 or item_vectors.ndim != 2 or user_vectors.shape[1] != item_vectors.shape[1]:
        raise ValueError(f"user vectors {user_vectors.shape} and item vectors {item_vectors.shape} must be [n, d] with the same d")
    if part_customers < 1:
        raise ValueError(f"part_customers must be >= 1, got {part_customers}")
    n_users, n_items = len(user_vectors), len(item_vectors)
    if not (np.isfinite(user_vectors).all() and np.isfinite(item_vectors).all()):
        raise ValueError("top_k: non-finite values in the embeddings")
    customer_idx = np.arange(n_users, dtype=np.int32) if customer_idx is None else np.asarray(customer_idx, dtype=np.int32)
    article_idx = np.arange(n_items, dtype=np.int32) if article_idx is None else np.asarray(article_idx, dtype=np.int32)
    k = min(k, n_items)
    dev = tf_env.torch_device(device)
    if max_batch_bytes is None:
        max_batch_bytes = (2 << 30) if dev.type == "cuda" else (16 << 20)
    # pad the catalogue to whole groups with zero vectors; _grouped_topk masks those columns to -inf
    n_padded = GROUP * -(-n_items // GROUP)
    batch = max(1, int(max_batch_bytes // (4 * n_padded)))
    items_t = torch.zeros((item_vectors.shape[1], n_padded), dtype=torch.float32)
    items_t[:, :n_items] = torch.from_numpy(item_vectors.T)
    items_t = items_t.to(dev)
    for first in range(0, n_users, part_customers):
        last = min(first + part_customers, n_users)
        cols, vals = _select(torch, user_vectors[first:last], items_t, n_items, k, batch, dev)
        yield pl.DataFrame(
            {
                "customer_idx": np.repeat(customer_idx[first:last], k),
                "article_idx": article_idx[cols.ravel()],
                "score": vals.ravel(),
                "rank": np.tile(np.arange(k, dtype=np.int16), last - first),
            },
            schema=CANDIDATE_SCHEMA,
        )


def _select(torch, users: np.ndarray, items_t, n_items: int, k: int, batch: int, dev) -> tuple[np.ndarray, np.ndarray]:
    """``[n_users, k]`` column numbers and scores of each user's top-``k`` against ``items_t`` ([d, padded])."""
    n_users = len(users)
    out_cols = np.empty((n_users, k), dtype=np.int64)
    out_vals = np.empty((n_users, k), dtype=np.float32)
    starts = iter(range(0, n_users, batch))
    lock = threading.Lock()

    def work() -> None:
        with torch.inference_mode():
            scores = torch.empty((min(batch, n_users), items_t.shape[1]), dtype=torch.float32, device=dev)  # reused
            while True:
                with lock:
                    start = next(starts, None)
                if start is None:
                    return
                end = min(start + batch, n_users)
                block = scores[: end - start]
                torch.mm(torch.from_numpy(users[start:end]).to(dev), items_t, out=block)
                vals, idx = _grouped_topk(torch, block, k, n_items)
                out_cols[start:end] = idx.cpu().numpy()
                out_vals[start:end] = vals.cpu().numpy()

    # CPU: one single-threaded worker per core pulling batches. Why not intra-op threads: ~30 small ops per
    # batch each end in an OpenMP barrier, and on a shared machine a descheduled thread stalls every barrier
    # (measured 25x slower under load); whole batches per worker only lose the busy core's share.
    workers = 1 if dev.type == "cuda" else max(1, min(torch.get_num_threads(), -(-n_users // batch)))
    threads_before = torch.get_num_threads()
    if workers > 1:
        torch.set_num_threads(1)
    try:
        pool = [threading.Thread(target=work) for _ in range(workers - 1)]
        for t in pool:
            t.start()
        work()
        for t in pool:
            t.join()
    finally:
        torch.set_num_threads(threads_before)
    return out_cols, out_vals


def top_k(
    user_vectors: np.ndarray,
    item_vectors: np.ndarray,
    k: int = 100,
    customer_idx: np.ndarray | None = None,
    article_idx: np.ndarray | None = None,
    device: str | None = None,
    max_batch_bytes: int | None = None,
) -> pl.DataFrame:
    """``top_k_parts`` in one frame, sorted by customer then rank (for callers whose result is small)."""
    parts = list(top_k_parts(user_vectors, item_vectors, k, customer_idx, article_idx, device, max_batch_bytes,
                             part_customers=max(1, len(user_vectors))))
    return parts[0] if len(parts) == 1 else pl.DataFrame(schema=CANDIDATE_SCHEMA)


def retrieval_parts(
    model_dir: str | os.PathLike,
    tfrecords_dir: str | os.PathLike,
    k: int = 100,
    device: str | None = None,
    image_embeddings: pl.DataFrame | None = None,
    part_customers: int = PART_CUSTOMERS,
) -> tuple[dict, Iterator[pl.DataFrame]]:
    """Top-``k`` candidates of every customer for the model's target week, as ``top_k_parts``; with the week,
    sizes and embedding time for metadata (the parts are computed as they are consumed).

    ``image_embeddings``: the frame the model was trained with, when it uses images (see ``load_model``).
    """
    from hm_recsys.retrieval.two_tower import load_model

    t0 = time.perf_counter()
    model, meta = load_model(model_dir, tfrecords_dir, image_embeddings)
    users, items = tfr.load_serving_features(tfrecords_dir)
    u = user_embeddings(model, users)
    v = item_embeddings(model, items)
    info = {
        "week": meta["week"],
        "n_customers": users.height,
        "n_articles": items.height,
        "k": k,
        "embed_seconds": round(time.perf_counter() - t0, 3),
        "device": str(tf_env.torch_device(device)),
    }
    parts = top_k_parts(u, v, k, users["customer_idx"].to_numpy(), items["article_idx"].to_numpy(), device=device,
                        part_customers=part_customers)
    return info, parts


def retrieve(
    model_dir: str | os.PathLike,
    tfrecords_dir: str | os.PathLike,
    k: int = 100,
    device: str | None = None,
    image_embeddings: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, dict]:
    """``retrieval_parts`` in one frame (experiments and benchmarks on small worlds), with ``top_k_seconds``."""
    info, parts = retrieval_parts(model_dir, tfrecords_dir, k, device, image_embeddings)
    t0 = time.perf_counter()
    cands = pl.concat([*parts, pl.DataFrame(schema=CANDIDATE_SCHEMA)])
    info["top_k_seconds"] = round(time.perf_counter() - t0, 3)
    return cands, info
