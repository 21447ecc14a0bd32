"""The union keeps every source's score and rank as features and counts agreeing sources."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from hm_recsys import weeks
from hm_recsys.candidates import run_sources, union_candidates
from hm_recsys_tests.ranking_toy_world import LAST_WEEK, toy_world


def frame(rows: list[tuple[int, int, float, int]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["customer_idx", "article_idx", "score", "rank"], orient="row").cast(
        {"customer_idx": pl.Int32, "article_idx": pl.Int32, "score": pl.Float32, "rank": pl.Int16}
    )


def test_union_of_hand_made_sources():
    a = frame([(0, 5, 3.0, 0), (0, 6, 1.0, 1), (1, 5, 2.0, 0)])
    b = frame([(0, 6, 9.0, 0), (2, 7, 4.0, 0)])
    got = union_candidates({"rep": a, "pop": b})
    assert got.columns == ["customer_idx", "article_idx", "pop_score", "pop_rank", "rep_score", "rep_rank", "n_sources"]
    assert got.rows() == [
        (0, 5, None, None, 3.0, 0, 1),
        (0, 6, 9.0, 0, 1.0, 1, 2),
        (1, 5, None, None, 2.0, 0, 1),
        (2, 7, 4.0, 0, None, None, 1),
    ]
    assert got.schema == pl.Schema({"customer_idx": pl.Int32, "article_idx": pl.Int32, "pop_score": pl.Float32,
                                    "pop_rank": pl.Int16, "rep_score": pl.Float32, "rep_rank": pl.Int16,
                                    "n_sources": pl.Int8})


def test_union_orders_by_customer_then_article_at_the_int32_limits():
    big = 2**31 - 1
    a = frame([(big, 0, 1.0, 0), (1, big, 2.0, 0), (1, 0, 3.0, 1)])
    b = frame([(1, big, 5.0, 0), (0, big - 1, 6.0, 0)])
    got = union_candidates({"a": a, "b": b})
    assert got.select("customer_idx", "article_idx", "n_sources").rows() == [
        (0, big - 1, 1), (1, 0, 1), (1, big, 2), (big, 0, 1)]


def test_union_keeps_every_source_of_the_pipeline():
    tables = toy_world()
    buyers = weeks.labels(tables.transactions, LAST_WEEK)["customer_idx"].unique()
    sources = run_sources(tables, LAST_WEEK, buyers, params={"als": {"factors": 8, "iterations": 3}})
    union = union_candidates(sources)
    keys = ["customer_idx", "article_idx"]
    assert not union.select(keys).is_duplicated().any()
    all_pairs = pl.concat([s.select(keys) for s in sources.values()]).unique()
    assert union.height == all_pairs.height
    for name, source in sources.items():
        kept = union.filter(pl.col(f"{name}_rank").is_not_null()).select(
            *keys, score=pl.col(f"{name}_score"), rank=pl.col(f"{name}_rank")
        )
        assert_frame_equal(kept.sort(keys), source.sort(keys), check_column_order=False)
    n = union.select(pl.sum_horizontal(pl.col(f"{s}_rank").is_not_null() for s in sources).cast(pl.Int8))
    assert union["n_sources"].to_list() == n.to_series().to_list()
    assert union["n_sources"].min() >= 1


def test_union_rejects_broken_sources():
    good = frame([(0, 5, 3.0, 0)])
    with pytest.raises(ValueError, match="no source"):
        union_candidates({})
    with pytest.raises(ValueError, match="lower_snake_case"):
        union_candidates({"Bad Name": good})
    with pytest.raises(ValueError, match="'dup'.*customer_idx 0 has article_idx 5 2 times"):
        union_candidates({"dup": pl.concat([good, good])})
    with pytest.raises(ValueError, match="'typed'.*'rank' is Int64"):
        union_candidates({"typed": good.with_columns(pl.col("rank").cast(pl.Int64))})
    with pytest.raises(ValueError, match="'missing'.*'score' is missing"):
        union_candidates({"missing": good.drop("score")})
    with pytest.raises(ValueError, match="'neg'.*negative customer_idx or article_idx"):
        union_candidates({"neg": frame([(0, 5, 3.0, 0), (1, -2, 1.0, 0)])})


def test_union_check_reads_the_written_buckets_and_names_the_broken_one(tmp_path):
    from types import SimpleNamespace

    from hm_recsys.buckets import write_bucket
    from hm_recsys.defs.checks import check_union_buckets

    tables = SimpleNamespace(n_customers=4, n_articles=10)
    good = union_candidates({"a": frame([(0, 5, 3.0, 0), (1, 5, 2.0, 0)]), "b": frame([(0, 5, 1.0, 0)])})
    folder = tmp_path / "union"
    folder.mkdir()
    write_bucket(good, folder, 0)
    write_bucket(union_candidates({"a": frame([(2, 9, 1.0, 0), (3, 1, 1.0, 0)])}), folder, 1)
    result = check_union_buckets(folder, tables)
    assert result.passed and result.metadata["rows"].value == 4
    write_bucket(pl.concat([good, good.head(1)]), folder, 1)
    result = check_union_buckets(folder, tables)
    assert not result.passed and "bucket=0001.parquet" in result.metadata["problems"].value
    assert "appears twice" in result.metadata["problems"].value
    write_bucket(good.with_columns(article_idx=pl.lit(10, pl.Int32)).head(1), folder, 1)
    assert "article_idx outside 0..9" in check_union_buckets(folder, tables).metadata["problems"].value
