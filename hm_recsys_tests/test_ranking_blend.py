"""The small-data guard (ranking/blend.py): final blends the ranker's order with the repurchase-then-popular
heuristic's, by a weight chosen on the held-out training week only."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from hm_recsys.metrics import map_at_k
from hm_recsys.ranking.blend import average_precisions, blend_top_k, choose_blend, heuristic_rank
from hm_recsys.ranking.ranker import top_k
from hm_recsys.ranking.tuning import tune_ranker
from hm_recsys_tests.ranking_toy_world import LAST_WEEK, labelled_week, toy_world

# Two customers, five candidates each. The heuristic's order: repurchase (articles 3, 4), then other colours
# (article 2), then the best sellers (1, then 0). The model's order is the reverse: 0, 1, 2, 3, 4.
HEURISTIC_ORDER = [3, 4, 2, 1, 0]


def frame() -> pl.DataFrame:
    rows = []
    for customer in (0, 1):
        for article in range(5):
            rows.append({"customer_idx": customer, "article_idx": article, "score": float(10 - article),
                         "repurchase_rank": {3: 0, 4: 1}.get(article), "same_product_rank": {2: 0}.get(article),
                         "popular_rank": {1: 0, 0: 1, 3: 2}.get(article)})
    return pl.DataFrame(rows, schema_overrides={c: pl.Int16 for c in ("repurchase_rank", "same_product_rank", "popular_rank")})


def bought(articles: list[int]) -> pl.DataFrame:
    return pl.DataFrame({"customer_idx": [c for c in (0, 1) for _ in articles], "article_idx": articles * 2})


def order(recs: pl.DataFrame, customer: int = 0) -> list[int]:
    return recs.filter(pl.col("customer_idx") == customer).sort("rank")["article_idx"].to_list()


def test_the_heuristic_order_is_repurchase_then_other_colours_then_popular():
    ranked = frame().with_columns(h=heuristic_rank(frame())).filter(pl.col("customer_idx") == 0).sort("h")
    assert ranked["article_idx"].to_list() == HEURISTIC_ORDER
    # a fill list in place of the popular_rank column; an article on no list has no place
    ranked = frame().with_columns(h=heuristic_rank(frame(), popular=[0, 9])).filter(pl.col("customer_idx") == 0)
    assert ranked.sort("article_idx")["h"].to_list() == [3.0, None, 2.0, 0.0, 1.0]


def test_a_bad_model_gives_way_to_the_heuristic():
    data, truth = frame(), bought([3, 4, 2])  # the heuristic's top three, the model's last three
    choice = choose_blend(data, truth)
    assert choice.weight == 1.0 and choice.maps[1.0] == 1.0 > choice.maps[0.0]
    assert order(blend_top_k(data, choice.weight)) == HEURISTIC_ORDER == order(blend_top_k(data, 1.0), 1)


def test_a_good_model_is_kept_alone():
    data, truth = frame(), bought([0, 1])  # the model's top two
    choice = choose_blend(data, truth)
    assert choice.weight == 0.0 and choice.maps[0.0] == 1.0 > choice.maps[1.0]
    assert_frame_equal(blend_top_k(data, 0.0), top_k(data))  # weight 0: exactly the ranker's top-k


def test_the_choice_is_deterministic_and_ties_keep_the_ranker():
    data = frame()
    assert choose_blend(data, bought([2])) == choose_blend(data, bought([2]))
    agree = data.with_columns(score=-pl.col("article_idx").replace_strict(dict(zip(HEURISTIC_ORDER, range(5)))).cast(pl.Float64))
    tie = choose_blend(agree, bought([3]))  # model and heuristic agree: every weight scores the same
    assert len(set(tie.maps.values())) == 1 and tie.weight == 0.0
    shuffled = data.sample(fraction=1.0, shuffle=True, seed=1)
    for w in (0.25, 0.5, 1.0):
        assert_frame_equal(blend_top_k(shuffled, w).sort("customer_idx", "rank"), blend_top_k(data, w).sort("customer_idx", "rank"))
    with pytest.raises(ValueError, match="blend weight"):
        blend_top_k(data, 1.5)


def test_a_gain_within_the_noise_keeps_the_ranker():
    """One-standard-error rule, 20 buyers: the heuristic's first pick (article 3) is bought by 3, the model's (0)
    by 2, and the others bought nothing either ranks (article 9): the heuristic's gain is within the noise."""
    data = pl.concat([frame().filter(pl.col("customer_idx") == 0).with_columns(customer_idx=pl.lit(c)) for c in range(20)])
    truth = pl.DataFrame({"customer_idx": list(range(20)), "article_idx": [3] * 3 + [0] * 2 + [9] * 15})
    choice = choose_blend(data, truth)
    assert max(choice.maps.values()) > choice.maps[0.0] and choice.weight == 0.0
    ap = average_precisions(blend_top_k(data, 0.5), truth)
    assert ap.len() == 20 and ap.mean() == pytest.approx(map_at_k(blend_top_k(data, 0.5), truth), abs=1e-12)
    clear = truth.with_columns(article_idx=pl.Series([3] * 18 + [0] * 2))
    assert choose_blend(data, clear).weight > 0  # 18 of 20 buyers: beyond the noise


@pytest.fixture(scope="module")
def frames():
    """Two labelled weeks of the toy world, newest first (the newest is held out)."""
    tables = toy_world()
    return tables, [labelled_week(tables, LAST_WEEK.shift(-b)) for b in (1, 2)]


def test_tuning_chooses_the_blend_on_the_held_out_training_week_only(frames):
    from hm_recsys.weeks import labels

    tables, weeks = frames
    held_out = labels(tables.transactions, LAST_WEEK.shift(-1))
    kwargs = dict(n_trials=1, seed=0, task_type="CPU", search_space={"iterations": (50, 50, False)})
    result = tune_ranker(weeks, valid_purchases=held_out, **kwargs)
    # the weights are scored on the week the trials are: weight 0 is the best trial's own held-out MAP@12
    assert result.blend_maps[0.0] == pytest.approx(result.best_map, abs=1e-12) and result.blend_weight in result.blend_maps
    assert tune_ranker(weeks, valid_purchases=held_out, **kwargs).blend_maps == result.blend_maps  # deterministic
    # held-out buyers who bought exactly their heuristic's first article: the choice follows that week's purchases
    first = (weeks[0].with_columns(h=heuristic_rank(weeks[0])).filter(pl.col("h") == 0).select("customer_idx", "article_idx"))
    leaning = tune_ranker(weeks, valid_purchases=first, **kwargs)
    assert leaning.blend_maps[1.0] == 1.0 and leaning.blend_weight > 0
    assert tune_ranker(weeks, valid_purchases=held_out, blend_weights=None, **kwargs).blend_weight == 0.0


def test_final_reads_its_blend_from_tuning_on_training_weeks_only():
    """``final`` of week W reads W's ranker_hparams.json, which sees the candidates of weeks before W only."""
    import dagster as dg

    from hm_recsys.defs.code_versions import reference_definitions

    graph = reference_definitions().resolve_asset_graph()
    assert dg.AssetKey("ranker_hparams") in graph.get(dg.AssetKey("final")).parent_keys
    node = graph.get(dg.AssetKey("ranker_hparams"))
    mapping = node.assets_def.get_partition_mapping(dg.AssetKey("candidates"))
    assert mapping.end_offset == -1  # no input of the target week
