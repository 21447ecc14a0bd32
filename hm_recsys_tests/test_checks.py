"""What the UI shows for a week: check results that name their week, floors that say they were skipped, and
the evaluation's MAP@12 table across the scored weeks."""

import dagster as dg

from hm_recsys.defs import checks
from hm_recsys.evaluation import scored_weeks


def test_a_floor_with_nothing_to_compare_is_skipped_and_names_its_week():
    [result] = checks.for_week([checks.floor_result(checks.FINAL_FLOOR, None, 0.01, "map12_final")], "2020-09-23")
    assert result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert list(result.metadata)[:2] == ["week", "status"] and result.metadata["status"].value == "skipped"
    assert result.metadata["week"].value == "2020-09-23"
    assert result.description.startswith("week 2020-09-23: skipped: no purchases in the week yet")


def test_a_judged_floor_and_a_contract_name_their_week_once():
    failed = checks.floor_result(checks.RECALL_FLOOR, 0.1, 0.2, "recall@100")
    results = checks.for_week(checks.for_week([failed], "2020-09-16"), "2020-09-23")  # stamped once
    assert not results[0].passed and results[0].metadata["status"].value == "failed"
    assert results[0].metadata["week"].value == "2020-09-16" and results[0].description == "week 2020-09-16"
    assert results[0].metadata["recall@100"].value == 0.1 and results[0].metadata["floor"].value == 0.2


def test_scored_weeks_lists_the_newest_scored_week_first():
    reports = [
        {"week": "2020-09-23", "buyers": 0, "map12": {}},  # the production week: nothing to score
        {"week": "2020-09-09", "buyers": 4, "map12": {"final": 0.03, "dropped": 0.05}},
        {"week": "2020-09-16", "buyers": 5, "map12": {"final": 0.02, "popular": 0.025}},
    ]
    assert scored_weeks(reports) == [
        {"week": "2020-09-16", "buyers": 5, "popular": 0.025, "final": 0.02, "dropped": None},
        {"week": "2020-09-09", "buyers": 4, "popular": None, "final": 0.03, "dropped": 0.05},
    ]
    assert scored_weeks(reports[:1]) == []
