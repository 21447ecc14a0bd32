"""The Kaggle submission format: fill, validate, and the errors a malformed file gets."""

import polars as pl
import pytest

from hm_recsys import submission
from hm_recsys.submission import SubmissionError


def test_fill_gives_every_customer_twelve_distinct(tiny_tables):
    recs = pl.DataFrame(
        {"customer_idx": [0, 0, 0, 1], "article_idx": [5, 5, 7, 3], "rank": [0, 1, 2, 0]},
        schema={"customer_idx": pl.Int32, "article_idx": pl.Int32, "rank": pl.Int16},
    )
    popular = list(range(3, 20))
    filled = submission.fill_popular(recs, popular, tiny_tables.n_customers)
    assert filled.height == 12 * tiny_tables.n_customers
    first = filled.filter(pl.col("customer_idx") == 0).sort("rank")["article_idx"].to_list()
    assert first[:2] == [5, 7] and len(set(first)) == 12 and 3 in first
    assert filled.filter(pl.col("customer_idx") == 1).sort("rank")["article_idx"].to_list()[:2] == [3, 4]


def _valid(tiny_tables) -> pl.DataFrame:
    filled = submission.fill_popular(pl.DataFrame(schema={"customer_idx": pl.Int32, "article_idx": pl.Int32, "rank": pl.Int16}),
                                     list(range(12)), tiny_tables.n_customers)
    return submission.to_kaggle(filled, tiny_tables)


def test_valid_file_passes(tiny_tables):
    submission.validate_kaggle(_valid(tiny_tables), tiny_tables)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda s: s.head(s.height - 1), "one per customer"),
        (lambda s: s.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("0000000001 0000000002"))
                                  .otherwise(pl.col("prediction")).alias("prediction")), "row 4"),
        (lambda s: s.rename({"prediction": "pred"}), "header"),
        (lambda s: s.with_columns(pl.col("prediction").str.replace(r"^\d+", "12345")), "malformed article id '12345'"),
        (lambda s: s.with_columns(pl.col("prediction").str.replace(r"^\d+", "0999999999")), "unknown article '0999999999'"),
    ],
)
def test_invalid_files_are_named(tiny_tables, mutate, message):
    with pytest.raises(SubmissionError, match=message):
        submission.validate_kaggle(mutate(_valid(tiny_tables)), tiny_tables)
