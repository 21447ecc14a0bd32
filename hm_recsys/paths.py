"""Where every artifact lives under the data folder (``./data``, ``--data-dir`` or ``HM_DATA_DIR``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_ENV = "HM_DATA_DIR"
MLFLOW_URI_ENV = "MLFLOW_TRACKING_URI"


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV, "data")).resolve()


@dataclass(frozen=True)
class DataPaths:
    root: Path

    @classmethod
    def default(cls) -> "DataPaths":
        return cls(default_data_dir())

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def images(self) -> Path:
        return self.raw / "images"

    @property
    def tables(self) -> Path:
        return self.root / "tables"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def mlflow_uri(self) -> str:
        """``$MLFLOW_TRACKING_URI`` when set (a tracking server or a database shared by a cluster's hosts),
        else a SQLite file in the data folder (one host)."""
        return os.environ.get(MLFLOW_URI_ENV) or f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def shards(self) -> Path:
        """Weekly TFRecord shards, content-keyed, shared by every target week whose window covers them."""
        return self.root / "tfrecord_shards"

    @property
    def tower_chain(self) -> Path:
        """Warm-start tower links, content-keyed (see retrieval.tower_chain)."""
        return self.root / "tower_chain"

    def week_dir(self, kind: str, week_key: str) -> Path:
        """Per-week artifacts: ``kind`` is e.g. ``candidates``, ``features``, ``models``."""
        return self.root / kind / week_key

    def submission(self, week_key: str, recommender: str) -> Path:
        return self.root / "submissions" / week_key / f"{recommender}.csv"

    def metrics(self, week_key: str) -> Path:
        return self.root / "reports" / week_key / "metrics.json"
