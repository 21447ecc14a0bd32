"""Every asset's knobs, and the YAML file that sets them for a data folder.

The file (``--config FILE``, ``$HM_CONFIG``, else ``<data>/config.yaml`` if present) maps asset names to
values, e.g. ``ranker_hparams: {n_trials: 5}``. Its values become the Config classes' *defaults*, which
feed each asset's code version: a changed value shows the asset (and only it) as changed in the UI, and
automation rebuilds it and what depends on its output, whether launched from the UI, the daemon or
the CLI. Unknown names, misspelled fields and out-of-range values are rejected when the file is read,
before anything runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Optional

import dagster as dg
import pydantic
from pydantic import Field

from hm_recsys.buckets import DEFAULT_BUCKET_CUSTOMERS

CONFIG_ENV = "HM_CONFIG"
CONFIG_FILE = "config.yaml"


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file, asset and field."""


class StrictConfig(dg.Config):
    model_config = pydantic.ConfigDict(extra="forbid")


class ImageEmbeddingConfig(StrictConfig):
    batch_size: int = Field(32, ge=1)
    weights_path: str = ""  # a torchvision resnet50 .pth; empty = torchvision's cache or a download
    max_side: int = Field(224, ge=64, le=1024)  # ResNet50 input side; smaller photos keep their own size


class TfRecordsConfig(StrictConfig):
    n_shards: int = Field(1, ge=1)  # files per weekly shard
    seed: int = 0


class TwoTowerSettings(StrictConfig):
    """The TFRS model's knobs (see retrieval.two_tower.TwoTowerConfig). Unset ones take the device's
    preset: batch 4096 x 6 + 3 epochs on a GPU; batch 1024 x 3 + 3 on a CPU. The defaults follow the data's
    size: ``optimizer: auto`` is sparse_adam above 200k customers, and no fit runs more whole epochs than fit
    in ``max_steps`` steps (so the full world's 14k-step anchor epoch is trained once, the demo's 3 times)."""

    output_dim: int = Field(32, ge=1)
    batch_size: Optional[int] = Field(None, ge=1)
    learning_rate: float = Field(0.01, gt=0)
    optimizer: Literal["auto", "adam", "adagrad", "sparse_adam"] = "auto"
    embedding_learning_rate: float = Field(0.05, gt=0)  # the id tables' Adagrad rate under sparse_adam
    epochs: Optional[int] = Field(None, ge=1)
    max_steps: int = Field(15_000, ge=1)
    finetune_epochs: Optional[int] = Field(None, ge=0)
    finetune_learning_rate: float = Field(0.003, gt=0)
    use_images: bool = True
    seed: int = 0
    # Week W's towers start from W-1's and learn the new week (retrieval.tower_chain); from scratch every
    # anchor_every calendar weeks. warm_start: false trains every week from scratch on 52 weeks.
    warm_start: bool = True
    anchor_every: int = Field(4, ge=1)
    incremental_weeks: int = Field(1, ge=1, le=52)
    incremental_epochs: int = Field(2, ge=1)

    def to_config(self):
        from hm_recsys.retrieval.two_tower import TwoTowerConfig

        return TwoTowerConfig.for_device(**{k: v for k, v in self.model_dump().items() if v is not None})


class RetrievalConfig(StrictConfig):
    k: int = Field(100, ge=12, le=1000)


class CandidatesConfig(StrictConfig):
    """The union of the candidate sources (asset ``candidates``).

    ``bucket_customers``: customers per bucket of the union and feature datasets: peak memory grows with it
    (about 700 bytes per candidate row, benchmarks/bucketed_memory.py), the number of files shrinks.
    ``bpr``: BPR as a source and so as the ranker's ``bpr_score`` / ``bpr_rank`` features; off leaves it out
    of the union and the asset graph (an ablation switch: the ranker's training weeks read the same union).
    """

    bucket_customers: int = Field(DEFAULT_BUCKET_CUSTOMERS, ge=1)
    bpr: bool = True


class RankerFeaturesConfig(StrictConfig):
    """Switches of the ranker's feature groups. Read by ``ranker_features`` and by ``ranker_hparams`` /
    ``ranker_model``, which featurise their training weeks: the model must learn the features it is scored on."""

    sequence: bool = True  # the ``seq_`` features: repurchase cycles, likeness to the last purchases


class RankerTuningConfig(StrictConfig):
    n_trials: int = Field(6, ge=1)  # the demo backtest held with 6 (0.03893) as with 10 and 20 trials (README)
    objective: Literal["YetiRank", "Logloss"] = "YetiRank"  # Logloss: a pointwise CatBoostClassifier, for comparison
    # YetiRank's random permutations of each group per iteration (CatBoost's default: 10). 1 halves training:
    # full scale, 2.2M rows, 557 -> 277 s wall and 953 -> 462 CPU s, MAP@12 0.07822 -> 0.07802
    # (benchmarks/ranker_full_scale.py); demo, 3 weeks of benchmarks/ranker_eval.py: 0.0344 -> 0.0340.
    yetirank_permutations: int = Field(1, ge=1)
    negatives_per_group: int = Field(20, ge=1)
    # Trials learn from and are judged on at most this many buyers per training week (a seeded sample): at
    # full scale a week has ~81k buyers and ~17M candidate rows to judge; the demo world's ~2.5k are all kept.
    sample_buyers: int = Field(20_000, ge=100)
    seed: int = 0
    # Trial 0 = the previous week's best parameters (its ranker_hparams.json, then a declared input), when it exists.
    # Off by default: it makes a week's parameters depend on whether its previous week was built (defs/assets/ranking.py).
    warm_start: bool = False
    # Stop a trial whose held-out MAP@12 trails the finished trials' median at the same tree count (CPU only).
    prune: bool = True
    # Small-data guard (ranking/blend.py): the best trial's model chooses, on the held-out week, how far `final`
    # blends its order with the repurchase-then-popular heuristic's (weight 0 = the ranker alone). false: weight 0.
    blend: bool = True

    def loss(self) -> str:
        """The CatBoost loss string the ranker trains with (stored in ``ranker_hparams.json`` as ``objective``)."""
        return f"YetiRank:permutations={self.yetirank_permutations}" if self.objective == "YetiRank" else self.objective


# Asset name -> its Config class. The two tower assets share one settings block.
ASSET_CONFIGS: dict[str, type[StrictConfig]] = {
    "image_embeddings": ImageEmbeddingConfig,
    "tfrecords": TfRecordsConfig,
    "two_tower": TwoTowerSettings,
    "retrieval_candidates": RetrievalConfig,
    "candidates": CandidatesConfig,
    "ranker_features": RankerFeaturesConfig,
    "ranker_hparams": RankerTuningConfig,
}


def config_path(data_root: Path, explicit: str | os.PathLike | None = None) -> Path | None:
    if explicit:
        return Path(explicit).resolve()
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]).resolve()
    default = data_root / CONFIG_FILE
    return default if default.exists() else None


def read_config(path: Path | None) -> dict[str, dict]:
    """The validated file as asset name -> values; ``{}`` without a file."""
    if path is None:
        return {}
    import yaml

    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of asset name -> settings, got a {type(raw).__name__}")
    for name, values in raw.items():
        if name not in ASSET_CONFIGS:
            raise ConfigError(f"{path}: no configurable asset named {name!r}; configurable: {sorted(ASSET_CONFIGS)}")
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: {name}: expected a mapping of field -> value, got {values!r}")
        try:
            ASSET_CONFIGS[name](**values)
        except pydantic.ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            fields = sorted(ASSET_CONFIGS[name].model_fields)
            hint = f" (fields: {fields})" if err["type"] == "extra_forbidden" else ""
            raise ConfigError(f"{path}: {name}.{field}: {err['msg']}, got {err.get('input')!r}{hint}") from None
    return raw


def with_defaults(cls: type[StrictConfig], values: dict) -> type[StrictConfig]:
    """``cls`` with ``values`` as its defaults: what a UI launch, the daemon and the CLI all run with."""
    if not values:
        return cls
    fields = {k: (cls.model_fields[k].annotation, Field(v, **_constraints(cls, k))) for k, v in values.items()}
    return pydantic.create_model(cls.__name__, __base__=cls, __module__=cls.__module__, **fields)


def _constraints(cls: type[StrictConfig], name: str) -> dict:
    out = {}
    for m in cls.model_fields[name].metadata:
        for attr in ("ge", "gt", "le", "lt"):
            if getattr(m, attr, None) is not None:
                out[attr] = getattr(m, attr)
    return out


def resolve(data_root: Path, explicit: str | os.PathLike | None = None) -> dict[str, type[StrictConfig]]:
    """Asset name -> Config class carrying the data folder's configured defaults."""
    values = read_config(config_path(data_root, explicit))
    return {name: with_defaults(cls, values.get(name, {})) for name, cls in ASSET_CONFIGS.items()}
