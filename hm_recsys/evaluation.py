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
