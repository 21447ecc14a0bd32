"""End to end on the generator's tiny world: sources -> union -> features -> ranker -> final beats the heuristics."""

from __future__ import annotations

import polars as pl

from hm_recsys import baselines, metrics, weeks
from hm_recsys.ranking import score, top_k, train_ranker, training_set
from hm_recsys.ranking.pipeline import labelled_week
from hm_recsys.submission import fill_popular
from hm_recsys.weeks import TargetWeek


def test_final_beats_every_heuristic_on_the_tiny_world(tiny_tables):
    tables = tiny_tables
    week = TargetWeek(weeks.week_start(tables.transactions["t_dat"].max()))
    truth = weeks.labels(tables.transactions, week)
    target = labelled_week(tables, week)
    train = training_set([labelled_week(tables, week.shift(-b)) for b in (1, 2)])
    model = train_ranker(train, {"iterations": 100}, seed=0, task_type="CPU")
    popular = baselines.popular_articles(tables, week)
    final = metrics.map_at_k(fill_popular(top_k(score(model, target)), popular, tables.n_customers), truth)
    heuristics = {
        name: metrics.map_at_k(fill_popular(fn(tables, week), popular, tables.n_customers), truth)
        for name, fn in baselines.BASELINES.items()
    }
    assert final >= 1.3 * max(heuristics.values()), (final, heuristics)
    assert target.filter(pl.col("label") == 1).height > 0
