"""End to end on the generator's tiny world: sources -> union -> features -> tuning -> ranker -> final, which must
not fall below any heuristic (issue 19 item 8: a week of ~150 buyers, where the ranker alone is noise-dominated)."""

from __future__ import annotations

import polars as pl

from hm_recsys import baselines, metrics, weeks
from hm_recsys.ranking import score, train_ranker, training_set, tune_ranker
from hm_recsys.ranking.blend import POPULAR_DEPTH, blend_top_k
from hm_recsys.ranking.pipeline import labelled_week
from hm_recsys.submission import fill_popular
from hm_recsys.weeks import TargetWeek


def test_final_is_not_below_any_heuristic_on_the_tiny_world(tiny_tables):
    """``final`` as the assets compute it, with one fixed trial: ranker_hparams tunes on the two training weeks
    (the newest held out) and chooses the blend weight there, ranker_model trains on both, final ranks the
    target week with that blend. The blend itself is pinned on hand-made frames (test_ranking_blend.py)."""
    tables = tiny_tables
    week = TargetWeek(weeks.week_start(tables.transactions["t_dat"].max()))
    truth = weeks.labels(tables.transactions, week)
    target = labelled_week(tables, week)
    frames = [labelled_week(tables, week.shift(-b)) for b in (1, 2)]
    tuned = tune_ranker(frames, n_trials=1, seed=0, task_type="CPU", search_space={"iterations": (100, 100, False)},
                        valid_purchases=weeks.labels(tables.transactions, week.shift(-1)),
                        valid_popular=baselines.popular_articles(tables, week.shift(-1), n=POPULAR_DEPTH))
    model = train_ranker(training_set(frames), tuned.best_params, seed=0, task_type="CPU")
    popular = baselines.popular_articles(tables, week)
    recs = blend_top_k(score(model, target), tuned.blend_weight, baselines.popular_articles(tables, week, n=POPULAR_DEPTH))
    final = metrics.map_at_k(fill_popular(recs, popular, tables.n_customers), truth)
    heuristics = {
        name: metrics.map_at_k(fill_popular(fn(tables, week), popular, tables.n_customers), truth)
        for name, fn in baselines.BASELINES.items()
    }
    assert final >= max(heuristics.values()), (final, tuned.blend_weight, tuned.blend_maps, heuristics)
    assert target.filter(pl.col("label") == 1).height > 0
