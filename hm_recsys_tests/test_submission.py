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


def test_written_and_read_in_parts_as_in_one_piece(tiny_tables, tmp_path, monkeypatch):
    """Submissions are converted, validated and read back ``PART_CUSTOMERS`` customers at a time (1.37M customers'
    ids as strings at once cost ~2.5 GiB): the same bytes and the same long frame whatever the part size, and a bad
    row in a later part is named by its row in the file."""
    recs = pl.DataFrame({"customer_idx": [0, 0, 5, 9, 9], "article_idx": [3, 4, 8, 1, 2], "rank": [0, 1, 0, 0, 1]},
                        schema={"customer_idx": pl.Int32, "article_idx": pl.Int32, "rank": pl.Int16})
    popular = list(range(10, 40))
    got = {}
    for part in (tiny_tables.n_customers + 5, 7, 1):
        monkeypatch.setattr(submission, "PART_CUSTOMERS", part)
        path = tmp_path / f"part{part}.csv"
        filled = submission.write_submission(recs, popular, tiny_tables, path)
        back = submission.read_submission(path, tiny_tables)
        assert back.sort("customer_idx", "rank").equals(filled)
        got[part] = path.read_bytes()
        rows = path.read_text().splitlines()
        assert rows[0] == "customer_id,prediction" and len(rows) == tiny_tables.n_customers + 1
    assert got[7] == got[1] == got[tiny_tables.n_customers + 5]
    lines = got[7].decode().splitlines()
    lines[20] = lines[20].rsplit(" ", 1)[0] + " 0999999999"  # file row 20 (after the header), in the third part of 7
    (tmp_path / "bad.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(SubmissionError, match="row 20 names unknown article '0999999999'"):
        submission.read_submission(tmp_path / "bad.csv", tiny_tables)


def test_fill_matches_a_plain_python_reference_and_names_unknown_customers():
    """Random recommendations with duplicates, ties and popular articles among them, against the rule in words:
    a customer's own articles by rank (ties: smaller article; a repeat keeps its best rank), then the popular list
    minus those, cut to 12."""
    import numpy as np

    rng = np.random.default_rng(7)
    n, popular = 50, [int(a) for a in rng.permutation(40)[:30]]
    recs = pl.DataFrame({"customer_idx": rng.integers(0, n, 400), "article_idx": rng.integers(0, 60, 400),
                         "rank": rng.integers(0, 20, 400)},
                        schema={"customer_idx": pl.Int32, "article_idx": pl.Int32, "rank": pl.Int16})
    got = submission.fill_popular(recs, popular, n)
    for c in range(n):
        mine = sorted((r, a) for cc, a, r in recs.iter_rows() if cc == c)
        want = list(dict.fromkeys([a for _, a in mine]))[:12]
        want += [a for a in popular if a not in want][: 12 - len(want)]
        assert got.filter(pl.col("customer_idx") == c)["article_idx"].to_list() == want, c
    assert got["rank"].to_list() == list(range(12)) * n
    with pytest.raises(ValueError, match="customer_idx 50 is outside 0..49"):
        submission.fill_popular(recs.with_columns(pl.lit(50, dtype=pl.Int32).alias("customer_idx")), popular, n)
