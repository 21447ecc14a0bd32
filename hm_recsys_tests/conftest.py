"""Session fixtures: one tiny synthetic world, generated and ingested once for all tests."""

from __future__ import annotations

import pytest

from hm_recsys.paths import DataPaths
from hm_recsys.tables import Tables, load_tables


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> DataPaths:
    """A tiny world's raw files (Kaggle schema + images) and its typed tables."""
    from hm_recsys.ingest import ingest
    from hm_recsys.synth import generate_world

    paths = DataPaths(tmp_path_factory.mktemp("tiny_world"))
    generate_world(paths.root, scale="tiny", seed=0)
    ingest(paths.raw, paths.tables)
    return paths


@pytest.fixture(scope="session")
def tiny_tables(tiny_world: DataPaths) -> Tables:
    return load_tables(tiny_world.tables)
