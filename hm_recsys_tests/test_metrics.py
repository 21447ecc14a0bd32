"""MAP@12 and recall against hand-computed values and a plain reference MAP@12 written here, not imported."""

import random

import polars as pl
import pytest

from hm_recsys.metrics import average_precision_at_k, map_at_k, recall, recall_at_k


def kaggle_apk(actual: set, predicted: list, k: int = 12) -> float:
    """AP@k as Kaggle's ``ml_metrics.apk`` computes it: a repeated prediction scores at its first rank only."""
    predicted = predicted[:k]
    score, hits = 0.0, 0
    for i, p in enumerate(predicted):
        if p in actual and p not in predicted[:i]:
            hits += 1
            score += hits / (i + 1)
    return score / min(len(actual), k) if actual else 0.0


def kaggle_map12(predictions: dict, truth: dict) -> float:
    """The H&M leaderboard's MAP@12: the mean AP@12 over the customers who bought in the week (who did not
    buy is left out); a buyer without predictions scores 0."""
    return sum(kaggle_apk(bought, predictions.get(c, [])) for c, bought in truth.items()) / len(truth)


def long(recs: dict[int, list[int]]) -> pl.DataFrame:
    rows = [(c, a, r) for c, items in recs.items() for r, a in enumerate(items)]
    return pl.DataFrame(rows, schema={"customer_idx": pl.Int32, "article_idx": pl.Int32, "rank": pl.Int16}, orient="row")


def bought(pairs: list[tuple[int, int]]) -> pl.DataFrame:
    return pl.DataFrame(pairs, schema={"customer_idx": pl.Int32, "article_idx": pl.Int32}, orient="row")


def test_map_hand_computed():
    recs = long({0: [1, 5, 2], 1: [9, 4], 3: [1]})
    # customer 0 bought article 1 twice (one relevant item), 2 and 3; customer 2 got no recommendation;
    # customer 3 bought nothing and is excluded from the mean.
    truth = bought([(0, 1), (0, 1), (0, 2), (0, 3), (1, 4), (2, 7)])
    expected = ((1 / 1 + 2 / 3) / 3 + (1 / 2) / 1 + 0.0) / 3
    assert map_at_k(recs, truth) == pytest.approx(expected)


def test_map_divides_by_twelve_when_more_relevant():
    truth = bought([(0, a) for a in range(20)])
    recs = long({0: list(range(12))})
    assert map_at_k(recs, truth) == pytest.approx(1.0)
    recs = long({0: list(range(100, 112))})
    assert map_at_k(recs, truth) == 0.0


def test_only_top_twelve_count_and_duplicates_count_once():
    truth = bought([(0, 5)])
    assert map_at_k(long({0: list(range(100, 112)) + [5]}), truth) == 0.0
    assert map_at_k(long({0: [5, 5, 6]}), truth) == pytest.approx(1.0)
    assert kaggle_apk({5}, [5, 5, 6]) == pytest.approx(1.0)
    assert kaggle_apk({5, 6}, [5, 5, 6]) == pytest.approx((1 / 1 + 2 / 3) / 2)


def test_map_matches_the_plain_kaggle_map12_on_random_data():
    """The project's scorer and its per-customer apk against ``kaggle_map12`` above: lists shorter and longer
    than 12, repeated articles, buyers without a list, listed customers who bought nothing."""
    rng = random.Random(7)
    recs, truth_sets = {}, {}
    for c in range(300):
        if rng.random() < 0.9:
            recs[c] = [rng.randrange(60) for _ in range(rng.randint(1, 16))]
        if rng.random() < 0.7:
            truth_sets[c] = set(rng.sample(range(60), rng.randint(1, 15)))
    truth = bought([(c, a) for c, items in truth_sets.items() for a in items])
    reference = kaggle_map12(recs, truth_sets)
    assert map_at_k(long(recs), truth) == pytest.approx(reference, abs=1e-12)
    for c, items in truth_sets.items():
        assert average_precision_at_k(recs.get(c, []), items) == pytest.approx(kaggle_apk(items, recs.get(c, [])), abs=1e-15)


def test_recall():
    truth = bought([(0, 1), (0, 2), (1, 3), (1, 3)])
    cands = long({0: [2, 9, 1], 1: [4]})
    assert recall(cands, truth) == pytest.approx(2 / 3)
    assert recall_at_k(cands, truth, k=1) == pytest.approx(1 / 3)


def test_empty_week_is_an_error():
    with pytest.raises(ValueError, match="no purchases"):
        map_at_k(long({0: [1]}), bought([]))
