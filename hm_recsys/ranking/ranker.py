"""CatBoost ranker: train on the multi-week training set, score candidate rows, take each customer's top-k.

YetiRank (a listwise ranking loss) is the default objective, as in the strongest H&M solutions; ``Logloss``
trains a pointwise CatBoostClassifier for comparison. Training is deterministic for a given seed,
``thread_count`` and task type (CatBoost fixes its random draws from ``random_seed``; GPU training is only
reproducible on the same card).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
from catboost import CatBoost, CatBoostClassifier, CatBoostRanker, Pool

from hm_recsys.candidates.contract import KEYS
from hm_recsys.io import atomic_path
from hm_recsys.metrics import K
from hm_recsys.ranking.features import LABEL, feature_columns
from hm_recsys.ranking.labels import GROUP

DEFAULT_OBJECTIVE = "YetiRank"
POINTWISE = "Logloss"
RANKING_OBJECTIVES = ("YetiRank", "YetiRankPairwise", "PairLogit", "PairLogitPairwise", "QueryRMSE", "QuerySoftMax")
# Measured on the demo world (benchmarks/ranker_eval.py): 150 trees at rate 0.2 match 300 at 0.1 (MAP@12 within
# 0.001) at half the time; depth 4..8 changed MAP by < 0.002.
DEFAULT_PARAMS: dict = {"depth": 6, "learning_rate": 0.2, "l2_leaf_reg": 3.0, "iterations": 150}
DEFAULT_THREADS = 2
# MAP@12 over the eval set's groups (its positive rows stand in for the purchases), not computed on the learn set
EVAL_METRIC = f"MAP:top={K}"
EVAL_METRIC_PARAMS = ";hints=skip_train~true"
SCORE_CHUNK_ROWS = 1_000_000


def default_task_type() -> str:
    """"GPU" when torch sees a CUDA device, else "CPU" (torch imported lazily: it is heavy)."""
    try:
        import torch
    except ImportError:
        return "CPU"
    return "GPU" if torch.cuda.is_available() else "CPU"


def _matrix(frame: pl.DataFrame, features: list[str]) -> np.ndarray:
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise ValueError(f"feature column(s) missing from the frame: {missing}")
    return frame.select(pl.col(features).cast(pl.Float32)).to_numpy()


def train_ranker(
    train_frame: pl.DataFrame,
    params: dict | None = None,
    objective: str = DEFAULT_OBJECTIVE,
    seed: int = 0,
    task_type: str | None = None,
    *,
    thread_count: int = DEFAULT_THREADS,
    eval_frame: pl.DataFrame | None = None,
    callbacks: list | None = None,
    metric_period: int = 1,
) -> CatBoost:
    """Fit CatBoost on ``train_frame`` (``training_set`` output: features, ``label``, ``group_id``).

    ``params``: CatBoost parameters (depth, learning_rate, l2_leaf_reg, iterations, ...) over ``DEFAULT_PARAMS``;
    ``task_type`` None picks ``default_task_type()``. Returns the fitted model; its ``feature_names_`` are the
    columns ``score`` reads.

    ``eval_frame`` (``training_set`` output too) makes CatBoost compute ``EVAL_METRIC`` on it every
    ``metric_period`` trees, which ``callbacks`` (objects with ``after_iteration(info)``; CPU only, CatBoost
    refuses them on GPU) read in ``info.metrics["validation"]``: tuning prunes trials with it. It never changes
    the trees (no best-model shrinking, no early stopping; pinned by a test), only what a callback may stop.
    """
    if objective != POINTWISE and objective.split(":")[0] not in RANKING_OBJECTIVES:
        raise ValueError(f"objective must be {POINTWISE!r} or one of {RANKING_OBJECTIVES} (with CatBoost's "
                         f"':name=value' parameters), got {objective!r}")
    for col in (LABEL, GROUP):
        if col not in train_frame.columns:
            raise ValueError(f"train_ranker: column {col!r} missing (build the frame with training_set)")
    labels = train_frame[LABEL]
    if labels.n_unique() < 2:
        raise ValueError(f"train_ranker: column {LABEL!r} holds only {labels.unique().to_list()}: need both 0 and 1")
    features = feature_columns(train_frame)
    settings = {
        **DEFAULT_PARAMS,
        **(params or {}),
        "loss_function": objective,
        "random_seed": seed,
        "thread_count": thread_count,
        "task_type": task_type or default_task_type(),
        "allow_writing_files": False,
        "verbose": False,
    }
    def pool(frame: pl.DataFrame, groups: bool) -> Pool:
        return Pool(_matrix(frame, features), label=frame[LABEL].to_numpy(),
                    group_id=frame[GROUP].to_numpy() if groups else None, feature_names=features)

    # MAP on the eval set needs groups in the learn pool too, even for Logloss (which ignores them: same trees)
    fit: dict = {}
    if eval_frame is not None:
        settings |= {"eval_metric": EVAL_METRIC + EVAL_METRIC_PARAMS, "use_best_model": False, "metric_period": metric_period}
        fit = {"eval_set": pool(eval_frame, True), "callbacks": callbacks}
    model = CatBoostClassifier(**settings) if objective == POINTWISE else CatBoostRanker(**settings)
    model.fit(pool(train_frame, objective != POINTWISE or eval_frame is not None), **fit)
    return model


def score(model: CatBoost, frame: pl.DataFrame, *, chunk_rows: int = SCORE_CHUNK_ROWS) -> pl.DataFrame:
    """``frame`` with ``score`` (Float32, higher = better) from the model's raw output, in row chunks."""
    features = list(model.feature_names_)
    parts = [
        CatBoost.predict(model, _matrix(frame.slice(start, chunk_rows), features), prediction_type="RawFormulaVal")
        for start in range(0, frame.height, chunk_rows)
    ]
    values = np.concatenate(parts) if parts else np.empty(0)
    return frame.with_columns(pl.Series("score", values, dtype=pl.Float32))


def top_k(scored: pl.DataFrame, k: int = K) -> pl.DataFrame:
    """Each customer's ``k`` best-scored articles: customer_idx, article_idx, rank (Int16, 0 = best).

    Ties are broken by the smaller article_idx; a customer with fewer candidates gets fewer rows.
    """
    return (
        scored.select(KEYS + ["score"])
        .unique(subset=KEYS, keep="first")
        .sort(["customer_idx", "score", "article_idx"], descending=[False, True, False])
        .with_columns(rank=pl.int_range(pl.len()).over("customer_idx").cast(pl.Int16))
        .filter(pl.col("rank") < k)
        .select(pl.col(KEYS).cast(pl.Int32), "rank")
    )


def feature_importance(model: CatBoost) -> pl.DataFrame:
    """feature, importance (PredictionValuesChange, sums to 100), largest first."""
    values = model.get_feature_importance(type="PredictionValuesChange")
    return pl.DataFrame({"feature": list(model.feature_names_), "importance": values.astype(np.float64)}).sort(
        ["importance", "feature"], descending=[True, False]
    )


def save_model(model: CatBoost, path: str | Path) -> Path:
    """Write the model atomically in CatBoost's binary format (readable by ``load_model``).

    CatBoost stamps every file with the training's finish time and a random ``model_guid``: the same model
    would get new bytes, so a new data version, and every dependant would look changed. Both are replaced
    by values of the model itself (no time; the guid a hash of the rest), so the same model is the same file.
    """
    import hashlib

    meta = model.get_metadata()
    meta["train_finish_time"] = ""
    meta["model_guid"] = ""
    with atomic_path(path) as tmp:
        model.save_model(str(tmp), format="cbm")
        meta["model_guid"] = hashlib.blake2b(tmp.read_bytes(), digest_size=16).hexdigest()
        model.save_model(str(tmp), format="cbm")
    return Path(path)


def load_model(path: str | Path) -> CatBoost:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ranker model file not found: {path}")
    return CatBoost().load_model(str(path), format="cbm")
