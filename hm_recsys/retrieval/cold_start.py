"""Cold start: how much of the target week's demand for never-sold articles retrieval catches.

Fashion launches articles every week; an article with no sale before the cutoff has no behavioural
signal, so only its attributes and its photo can bring it into a customer's top-100. The ablation
trains the same towers on the same TFRecords with the same seed, with and without the image features,
and reports overall recall@k beside the cold-start share.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import polars as pl

from hm_recsys import metrics
from hm_recsys.tables import Tables
from hm_recsys.weeks import TargetWeek, history, labels


def cold_pairs(tables: Tables, week: TargetWeek) -> pl.DataFrame:
    """Distinct (customer, article) purchases of the target week whose article never sold before the cutoff."""
    sold_before = history(tables.transactions, week).select("article_idx").unique()
    return (
        labels(tables.transactions, week)
        .select("customer_idx", "article_idx")
        .unique()
        .join(sold_before, on="article_idx", how="anti")
    )


def cold_start_recall(candidates: pl.DataFrame, tables: Tables, week: TargetWeek, k: int = 100) -> dict:
    """Share of the cold pairs that appear in the buyer's top-``k`` candidates (``rank < k``).

    ``share`` is None when the week has no purchase of a never-sold article (nothing to measure).
    """
    pairs = cold_pairs(tables, week)
    found = pairs.join(
        candidates.join(pairs.select("customer_idx").unique(), on="customer_idx", how="semi")  # only theirs: memory
        .filter(pl.col("rank") < k).select("customer_idx", "article_idx"),
        on=["customer_idx", "article_idx"],
        how="semi",
    )
    return {
        "k": k,
        "n_cold_pairs": pairs.height,
        "n_cold_articles": pairs["article_idx"].n_unique(),
        "n_found": found.height,
        "share": found.height / pairs.height if pairs.height else None,
    }


def ablation(
    tables: Tables,
    week: TargetWeek,
    tfrecords_dir: str | os.PathLike,
    image_embeddings: pl.DataFrame,
    work_dir: str | os.PathLike,
    config=None,
    k: int = 100,
    with_images_model_dir: str | os.PathLike | None = None,
) -> pl.DataFrame:
    """Train + fine-tune + retrieve with and without image features; one row per variant.

    ``with_images_model_dir``: an already fine-tuned with-images model of the same TFRecords and config
    (e.g. the production one) to reuse instead of training that arm again. Columns: variant, recall_at_k,
    cold_share, n_cold_pairs, n_cold_found, train_seconds, final_loss.
    """
    from hm_recsys.retrieval import brute_force, two_tower

    config = config or two_tower.TwoTowerConfig()
    work_dir = Path(work_dir)
    truth = labels(tables.transactions, week)
    if truth.height == 0:
        raise ValueError(f"no purchases in week {week}: the ablation needs the week's labels")
    rows = []
    for use_images in (True, False):
        variant = "with_images" if use_images else "without_images"
        cfg = dataclasses.replace(config, use_images=use_images)
        t0 = time.perf_counter()
        if use_images and with_images_model_dir is not None:
            model_dir = Path(with_images_model_dir)
            final_loss = None
        else:
            two_tower.train(tfrecords_dir, work_dir / variant / "trained", cfg, image_embeddings if use_images else None)
            hist = two_tower.finetune(tfrecords_dir, work_dir / variant / "trained", work_dir / variant / "finetuned", cfg,
                                      image_embeddings if use_images else None)
            model_dir = work_dir / variant / "finetuned"
            final_loss = hist["loss"][-1]
        train_seconds = time.perf_counter() - t0
        cands, _ = brute_force.retrieve(model_dir, tfrecords_dir, k=k,
                                        image_embeddings=image_embeddings if use_images else None)
        cold = cold_start_recall(cands, tables, week, k)
        rows.append(
            {
                "variant": variant,
                "recall_at_k": metrics.recall_at_k(cands, truth, k),
                "cold_share": cold["share"],
                "n_cold_pairs": cold["n_cold_pairs"],
                "n_cold_found": cold["n_found"],
                "train_seconds": round(train_seconds, 1),
                "final_loss": final_loss,
            }
        )
    return pl.DataFrame(rows, schema={"variant": pl.String, "recall_at_k": pl.Float64, "cold_share": pl.Float64,
                                      "n_cold_pairs": pl.Int64, "n_cold_found": pl.Int64, "train_seconds": pl.Float64,
                                      "final_loss": pl.Float64})
