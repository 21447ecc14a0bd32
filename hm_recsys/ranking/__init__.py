"""Ranking stage: features for candidate rows, multi-week training set, CatBoost ranker, Optuna tuning, top-k."""

from hm_recsys.ranking.bucketed import recommend_from_buckets, training_rows, write_feature_buckets
from hm_recsys.ranking.features import build_features, feature_columns, feature_context, features_for
from hm_recsys.ranking.inference import rank_in_chunks, recommend
from hm_recsys.ranking.labels import attach_labels, training_set
from hm_recsys.ranking.ranker import (
    feature_importance,
    load_model,
    save_model,
    score,
    top_k,
    train_ranker,
)
from hm_recsys.ranking.tuning import TuningResult, tune_ranker

__all__ = [
    "TuningResult",
    "attach_labels",
    "build_features",
    "feature_columns",
    "feature_context",
    "features_for",
    "feature_importance",
    "load_model",
    "rank_in_chunks",
    "recommend",
    "recommend_from_buckets",
    "save_model",
    "score",
    "top_k",
    "train_ranker",
    "training_rows",
    "training_set",
    "tune_ranker",
    "write_feature_buckets",
]
