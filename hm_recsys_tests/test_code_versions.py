"""No silent staleness: an asset's source may not change while its code_version stays the same, unless
the table records a reviewed "outputs unchanged" (hm_recsys/defs/code_versions.py)."""

import functools
import json

import pytest

from hm_recsys import source_hash
from hm_recsys.defs import code_versions as cv
from hm_recsys.source_hash import SourceGraph

EDITED = "hm_recsys.baselines"  # the module the simulated edits touch


@pytest.fixture(scope="module")
def defs():
    return cv.reference_definitions()


@pytest.fixture(scope="module")
def assets(defs):
    return cv.asset_sources(defs)


@pytest.fixture(scope="module")
def current(assets):
    return cv.compute(assets)


def reader_editing(module: str, edit):
    """A SourceGraph reader that returns ``edit(source)`` for ``module``'s file, the file itself otherwise."""
    target = SourceGraph().path(module)

    def read(path):
        text = source_hash.read_text(path)
        return edit(text) if path == target else text

    return read


def simulated(assets, edit, module: str = EDITED) -> dict:
    return cv.compute(assets, SourceGraph(reader=reader_editing(module, edit)))


def code_change(text: str) -> str:
    return text + "\n\nSIMULATED_CHANGE = 1\n"


def users_of(table: dict, module: str) -> set[str]:
    return {name for name, entry in table["assets"].items() if module in entry["closure"]}


def test_no_asset_changed_without_a_code_version_bump(current):
    unbumped, _, _ = cv.compare(cv.load(), current)
    assert not unbumped, "\n".join(unbumped)


def test_table_is_up_to_date(current):
    _, stale, _ = cv.compare(cv.load(), current)
    assert not stale, "\n".join(stale) + f"\nrun `{cv.COMMAND}`"


def test_every_materializable_asset_is_listed_with_a_code_version(assets, current):
    assert {"history", "tfrecords", "retrieval_candidates", "candidates", "ranker_features", "final", "evaluation"} <= set(assets)
    assert not any(name.startswith("raw_") for name in assets)  # observed, not materialized: no code version
    assert all(version for version, _ in assets.values()), assets
    history = current["assets"]["history"]
    assert history["module"] == "hm_recsys.defs.assets.history"
    assert {"hm_recsys.content_hash", "hm_recsys.weeks"} <= set(history["closure"])  # imports inside functions count
    # a package __init__ counts when a name is imported from it, not when it is only on the way to a submodule
    assert "hm_recsys.candidates" in current["assets"]["popular_candidates"]["closure"]  # SOURCES
    assert "hm_recsys.candidates.contract" in current["assets"]["articles"]["closure"]  # checks -> contract
    assert "hm_recsys.candidates" not in current["assets"]["articles"]["closure"]


def test_an_unbumped_change_is_reported(assets, current):
    """The check can fail: an edit to hm_recsys/baselines.py with no bump names every asset that imports it."""
    changed = simulated(assets, code_change)
    unbumped, _, _ = cv.compare(current, changed)
    expected = users_of(current, EDITED)
    assert {"popular_all_time", "popular_last_week", "repurchase_popular"} <= expected
    assert "articles" not in expected and "history" not in expected
    assert {line.split(":")[0] for line in unbumped} == expected
    line = next(line for line in unbumped if line.startswith("popular_all_time:"))
    assert EDITED in line and "code_version is still '1-noconfig'" in line
    assert cv.COMMAND in line and f"{cv.COMMAND} --outputs-unchanged popular_all_time" in line


def test_an_unbumped_change_fails_the_command_and_is_not_written(defs, current, tmp_path, monkeypatch, capsys):
    table = tmp_path / "code_versions.json"
    table.write_text(cv.dump(current))
    monkeypatch.setattr(cv, "TABLE", table)
    monkeypatch.setattr(cv, "reference_definitions", lambda: defs)
    monkeypatch.setattr(cv, "SourceGraph", functools.partial(SourceGraph, reader=reader_editing(EDITED, code_change)))
    assert cv.main([]) == 1
    assert "ERROR       popular_all_time: source changed in hm_recsys.baselines" in capsys.readouterr().out
    assert cv.main(["--write"]) == 1
    assert table.read_text() == cv.dump(current)  # refused: nothing recorded
    flagged = sorted(users_of(current, EDITED))
    assert cv.main(["--write", "--outputs-unchanged", *flagged]) == 0
    written = json.loads(table.read_text())
    for name in flagged:
        entry = written["assets"][name]
        assert entry["code_version"] == current["assets"][name]["code_version"]
        assert entry["source_hash"] != current["assets"][name]["source_hash"]
        assert entry["last_change"] == cv.REVIEWED
    capsys.readouterr()
    assert cv.main([]) == 0
    assert "every code_version matches its source" in capsys.readouterr().out


def test_a_bump_is_accepted(assets, current):
    flagged = users_of(current, EDITED)
    bumped = {name: (f"{v}-bumped" if name in flagged else v, m) for name, (v, m) in assets.items()}
    changed = cv.compute(bumped, SourceGraph(reader=reader_editing(EDITED, code_change)))
    unbumped, stale, table = cv.compare(current, changed)
    assert not unbumped
    assert {line.split(":")[0] for line in stale} == flagged and all("bumped" in line for line in stale)
    assert {n for n, e in table["assets"].items() if e["last_change"] == cv.BUMPED} == flagged
    assert cv.compare(table, changed) == ([], [], table)  # once written, the check passes


def test_outputs_unchanged_must_name_a_changed_asset(assets, current):
    changed = simulated(assets, code_change)
    unbumped, _, _ = cv.compare(current, changed, outputs_unchanged=[*users_of(current, EDITED), "articles", "no_such_asset"])
    assert any(line.startswith("--outputs-unchanged articles: its source did not change") for line in unbumped)
    assert any(line.startswith("--outputs-unchanged no_such_asset: there is no asset") for line in unbumped)


def test_comments_docstrings_and_formatting_do_not_count(assets, current):
    def cosmetic(text: str) -> str:
        text = text.replace('"""', '"""Reworded. ', 1)  # the module docstring
        return "# a new comment\n" + text.replace("\n\n\n", "\n\n\n\n") + "\n# trailing comment\n"

    assert cosmetic(SourceGraph().reader(SourceGraph().path(EDITED))) != SourceGraph().reader(SourceGraph().path(EDITED))
    assert cv.compare(current, simulated(assets, cosmetic)) == ([], [], current)
    documented = "def f(x):\n    '''doc'''\n    return x  # c\n"
    assert source_hash.source_hash(documented) == source_hash.source_hash("def f( x ):\n    return (x)\n")
    assert source_hash.source_hash("def f(x):\n    return x\n") != source_hash.source_hash("def f(x):\n    return -x\n")
    assert source_hash.source_hash("X = 'a'\n") != source_hash.source_hash("X = 'b'\n")


def test_new_removed_and_unrecorded_bumps_are_out_of_date(assets, current):
    fewer = {k: v for k, v in assets.items() if k != "final"}
    _, stale, _ = cv.compare(current, cv.compute(fewer))
    assert stale == ["final: in the table but no longer defined"]
    _, stale, _ = cv.compare(cv.compute(fewer), current)
    assert stale == [f"final: new asset (code_version {assets['final'][0]!r}), not in the table"]
    bumped = {**assets, "history": ("9-noconfig", assets["history"][1])}
    unbumped, stale, table = cv.compare(current, cv.compute(bumped))
    assert not unbumped and stale == [f"history: code_version bumped {assets['history'][0]!r} -> '9-noconfig', "
                                      f"the table still records {assets['history'][0]!r}"]
    assert table["assets"]["history"]["last_change"] == cv.BUMPED
    # a closure that changed while none of its modules did: the import rules changed, not the code
    recorded = json.loads(json.dumps(current))
    recorded["assets"]["history"]["closure"].remove("hm_recsys.weeks")
    recorded["assets"]["history"]["source_hash"] = "0" * 16
    unbumped, stale, _ = cv.compare(recorded, current)
    assert not unbumped and stale == ["history: its closure changed (+hm_recsys.weeks (newly imported)) but none of its modules did"]
