"""TFRS two-tower retrieval model: trained on the 365-day window, fine-tuned on the last 30 days.

User tower: customer id embedding + age, price sensitivity, category affinity, channel mix, activity.
Item tower: article id, product and attribute embeddings + sales recency and price level + the 2048-d ResNet50
embedding (a fixed, non-trainable lookup by ``article_idx``) projected to 32-d. Both end in a 32-d,
L2-normalised vector; ``tfrs.tasks.Retrieval`` trains them with an in-batch softmax.

Choices that matter for recall (why they are here):
- logQ correction (``candidate_sampling_probability``): in-batch negatives are drawn in proportion to
  popularity; without the correction the model learns to push best sellers *down*.
- id dropout: a share of training rows use the shared "unknown" id (key 0), so customers and
  articles absent from the training window (new articles above all) get a trained embedding and are
  scored from their features and image.
- accidental hits (the same article twice in a batch) are removed from the negatives.

Determinism: ``tf.keras.utils.set_random_seed`` + ``enable_op_determinism`` give identical weights
for the same data, config and seed on the same machine and device. Op determinism is process-wide (TF
offers no scoped switch) and costs some GPU speed; ``TwoTowerConfig.deterministic=False`` skips it.
Results still differ between CPU and GPU and between TF builds (different kernels).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import polars as pl

from hm_recsys import io
from hm_recsys.retrieval import tf_env
from hm_recsys.retrieval import tfrecords as tfr
from hm_recsys.retrieval.tower_features import image_matrix

USER_DENSE_FEATURES = ("age", "price_sensitivity", "category_affinity", "channel_mix", "activity")
ITEM_DENSE_FEATURES = ("item_recency", "item_price")
MODEL_META = "model.json"
HISTORY = "history.json"
USER_WEIGHTS = "user_tower"
ITEM_WEIGHTS = "item_tower"


@dataclass(frozen=True)
class TwoTowerConfig:
    output_dim: int = 32
    user_id_dim: int = 32
    item_id_dim: int = 32
    product_dim: int = 16
    categorical_dim: int = 8
    image_dim: int = 32
    hidden_dim: int = 128
    use_images: bool = True
    batch_size: int = 4096
    # see OPTIMIZERS / _optimizer: "sparse_adam" = Adagrad on id tables, Adam elsewhere; "auto" = sparse_adam
    # when the customer table has more than SPARSE_ID_ROWS rows, else adam (resolved_fit)
    optimizer: str = "auto"
    learning_rate: float = 0.01
    embedding_learning_rate: float = 0.05  # the id tables' Adagrad rate under "sparse_adam"
    epochs: int = 6
    finetune_epochs: int = 3
    # No fit runs more whole epochs than fit in this many steps (at least one epoch): a data-sized default
    # for the epoch counts, which were chosen on the demo world (~330 steps an epoch at batch 1024; full scale
    # ~14k). None: no budget.
    max_steps: int | None = 15_000
    finetune_learning_rate: float = 0.003
    temperature: float = 0.05
    id_dropout: float = 0.1
    logq_correction: bool = True
    remove_accidental_hits: bool = True
    shuffle_buffer: int = 65536
    seed: int = 0
    deterministic: bool = True
    # Weekly warm start (weekly-shard TFRecords only; see tower_chain): ``train(init_from=...)`` starts
    # from the previous week's model and trains only on the newest ``incremental_weeks`` weekly shards
    # (1 = just the new week; more = a replay of recent weeks) for ``incremental_epochs``; the chain
    # restarts from scratch every ``anchor_every`` calendar weeks.
    warm_start: bool = False
    incremental_weeks: int = 1
    incremental_epochs: int = 2
    anchor_every: int = 4

    @classmethod
    def cpu_preset(cls, **overrides) -> "TwoTowerConfig":
        """Batch 1024, 3 + 3 epochs: on a CPU the best recall per minute measured on the demo world.

        Demo world (40k customers, 5k articles, 341k training rows), week 2020-09-16, 2 shared cores:
        batch 1024 x 3 epochs trained in 63 s to recall@100 0.58 after fine-tuning; the default
        batch 4096 x 6 epochs took 477 s for 0.54 (fewer, costlier updates). On a GPU keep the default.
        """
        return cls(**{"batch_size": 1024, "epochs": 3, "finetune_epochs": 3, **overrides})

    @classmethod
    def for_device(cls, **overrides) -> "TwoTowerConfig":
        """The default (batch 4096) when TensorFlow sees a GPU, else ``cpu_preset``."""
        tf, _ = tf_env.tensorflow()
        return cls(**overrides) if tf.config.list_physical_devices("GPU") else cls.cpu_preset(**overrides)

    @classmethod
    def from_dict(cls, d: dict) -> "TwoTowerConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown two-tower config keys {sorted(unknown)}")
        return cls(**d)


def _keras_classes():
    """Build the tower classes lazily: they subclass tf.keras / tfrs types that only exist after tf_env."""
    tf, tfrs = tf_env.tensorflow()

    class UserTower(tf.keras.Model):
        def __init__(self, vocab_sizes: dict, cfg: TwoTowerConfig):
            super().__init__(name="user_tower")
            self.cfg = cfg
            self.id_embedding = tf.keras.layers.Embedding(vocab_sizes["customer_key"], cfg.user_id_dim, name="customer_embedding")
            self.hidden = tf.keras.layers.Dense(cfg.hidden_dim, activation="relu", name="hidden")
            self.head = tf.keras.layers.Dense(cfg.output_dim, name="head")

        def call(self, features, training=False):
            key = _id_dropout(tf, features["customer_key"], self.cfg.id_dropout if training else 0.0)
            x = tf.concat([self.id_embedding(key)] + [features[n] for n in USER_DENSE_FEATURES], axis=1)
            return tf.math.l2_normalize(self.head(self.hidden(x)), axis=1)

    class ItemTower(tf.keras.Model):
        def __init__(self, vocab_sizes: dict, cfg: TwoTowerConfig, categoricals: list[str], images: np.ndarray | None):
            super().__init__(name="item_tower")
            self.cfg = cfg
            self.categoricals = list(categoricals)
            self.id_embedding = tf.keras.layers.Embedding(vocab_sizes["article_key"], cfg.item_id_dim, name="article_embedding")
            self.product_embedding = tf.keras.layers.Embedding(vocab_sizes["product_key"], cfg.product_dim, name="product_embedding")
            self.cat_embeddings = [
                tf.keras.layers.Embedding(vocab_sizes[c], cfg.categorical_dim, name=f"{c}_embedding") for c in self.categoricals
            ]
            self.image_table = None
            if images is not None:
                # a variable so it is placed on the device once; a fixed input, so checkpoints leave it out.
                # Created from the matrix itself: zeros then assign kept a second 0.84 GiB copy resident at full scale.
                self.image_table = self.add_weight(
                    name="image_table", shape=images.shape, dtype=tf.float32, trainable=False,
                    initializer=lambda shape, dtype=None: images,
                )
                self.image_projection = tf.keras.layers.Dense(cfg.image_dim, name="image_projection")
            self.hidden = tf.keras.layers.Dense(cfg.hidden_dim, activation="relu", name="hidden")
            self.head = tf.keras.layers.Dense(cfg.output_dim, name="head")

        def call(self, features, training=False):
            rate = self.cfg.id_dropout if training else 0.0
            parts = [
                self.id_embedding(_id_dropout(tf, features["article_key"], rate)),
                self.product_embedding(_id_dropout(tf, features["product_key"], rate)),
                *[emb(features[c]) for c, emb in zip(self.categoricals, self.cat_embeddings)],
                *[features[n] for n in ITEM_DENSE_FEATURES],
            ]
            if self.image_table is not None:
                img = tf.gather(self.image_table, features["article_idx"])
                parts += [self.image_projection(img[:, :-1]), img[:, -1:]]
            x = tf.concat(parts, axis=1)
            return tf.math.l2_normalize(self.head(self.hidden(x)), axis=1)

    class TwoTowerModel(tfrs.Model):
        def __init__(self, user_tower, item_tower, cfg: TwoTowerConfig):
            super().__init__()
            self.user_tower = user_tower
            self.item_tower = item_tower
            self.cfg = cfg
            self.task = tfrs.tasks.Retrieval(
                loss=tf.keras.losses.CategoricalCrossentropy(
                    from_logits=True, reduction=tf.keras.losses.Reduction.SUM_OVER_BATCH_SIZE
                ),
                metrics=None,
                temperature=cfg.temperature,
                remove_accidental_hits=cfg.remove_accidental_hits,
            )

        def compute_loss(self, features, training=False):
            query = self.user_tower(features, training=training)
            candidate = self.item_tower(features, training=training)
            return self.task(
                query,
                candidate,
                candidate_sampling_probability=features["item_prob"][:, 0] if self.cfg.logq_correction else None,
                candidate_ids=features["article_idx"] if self.cfg.remove_accidental_hits else None,
                compute_metrics=False,
                compute_batch_metrics=False,
            )

    return UserTower, ItemTower, TwoTowerModel


def _id_dropout(tf, keys, rate: float):
    """Replace a share ``rate`` of ids by 0 (the shared unknown-id row) while training."""
    if not rate:
        return keys
    drop = tf.random.uniform(tf.shape(keys)) < rate
    return tf.where(drop, tf.zeros_like(keys), keys)


def _categoricals(manifest: dict) -> list[str]:
    return [n for n in manifest["item_tower_features"] if n.startswith("cat_")]


def build_model(manifest: dict, config: TwoTowerConfig, images: np.ndarray | None = None):
    """A fresh (untrained) model for the vocabularies of ``manifest``; ``images``: ``image_matrix`` output."""
    UserTower, ItemTower, TwoTowerModel = _keras_classes()
    if config.use_images and images is None:
        raise ValueError("config.use_images is set but no image matrix was given")
    if images is not None and images.shape[0] != manifest["n_articles"]:
        raise ValueError(f"image matrix has {images.shape[0]} rows, the TFRecords have {manifest['n_articles']} articles")
    user = UserTower(manifest["vocab_sizes"], config)
    item = ItemTower(manifest["vocab_sizes"], config, _categoricals(manifest),
                     np.ascontiguousarray(images, dtype=np.float32) if config.use_images else None)
    model = TwoTowerModel(user, item, config)
    _build(model, manifest)
    return model


def _dummy_batch(manifest: dict) -> dict:
    tf, _ = tf_env.tensorflow()
    out = {}
    for name, s in manifest["feature_spec"].items():
        dtype = tf.int64 if s["dtype"] == "int64" else tf.float32
        out[name] = tf.zeros([2, *s["shape"]], dtype=dtype)
    return out


def _build(model, manifest: dict) -> None:
    batch = _dummy_batch(manifest)
    model.user_tower(batch)
    model.item_tower(batch)


OPTIMIZERS = ("adam", "adagrad", "sparse_adam")  # what _optimizer builds; the config also takes "auto"
# "auto" switches to sparse updates above this many customers: Adam's cost per step grows with the id tables
# (0.203 s/step at 1.37M customers against sparse_adam's 0.015 s), and the demo world's 40k keep Adam.
SPARSE_ID_ROWS = 200_000


def resolved_fit(config: TwoTowerConfig, n_customers: int, n_examples: int, epochs: int) -> tuple[str, int]:
    """The optimizer and epoch count one fit uses: ``auto`` and the step budget resolved for this data."""
    optimizer = config.optimizer
    if optimizer == "auto":
        optimizer = "sparse_adam" if n_customers > SPARSE_ID_ROWS else "adam"
    if config.max_steps is not None and epochs > 0:
        steps_per_epoch = max(1, -(-n_examples // config.batch_size))
        epochs = max(1, min(epochs, config.max_steps // steps_per_epoch))
    return optimizer, epochs


def _id_tables(tf, model) -> list:
    """The embedding tables' variables: the only ones whose gradient touches a few rows per batch."""
    return [w for m in model.submodules if isinstance(m, tf.keras.layers.Embedding) for w in m.trainable_weights]


def _optimizer(tf, name: str, learning_rate: float, model=None, embedding_learning_rate: float = 0.05):
    """``sparse_adam``: Adagrad on the id tables, Adam on everything else (TFRS's CompositeOptimizer).

    Why: Adam decays its two moment tables for every row at every step, so one step costs a pass over the
    1.37M x 32 customer table at full scale (batch 1024: 0.203 s/step, sparse_adam 0.015 s; README); Adagrad's sparse
    update touches only the rows in the batch, and Adam stays where it helps, on the small dense layers.
    """
    if name == "adam":
        return tf.keras.optimizers.Adam(learning_rate=learning_rate)
    if name == "adagrad":
        return tf.keras.optimizers.Adagrad(learning_rate=learning_rate)
    if name == "sparse_adam":
        if model is None:
            raise ValueError("sparse_adam needs the model (to split id tables from dense weights)")
        _, tfrs = tf_env.tensorflow()
        tables = {w.ref() for w in _id_tables(tf, model)}
        return tfrs.experimental.optimizers.CompositeOptimizer([
            (tf.keras.optimizers.legacy.Adagrad(learning_rate=embedding_learning_rate), lambda: _id_tables(tf, model)),
            (tf.keras.optimizers.legacy.Adam(learning_rate=learning_rate),
             lambda: [w for w in model.trainable_variables if w.ref() not in tables]),
        ])
    raise ValueError(f"unknown optimizer {name!r} (one of {OPTIMIZERS})")


def _seed(config: TwoTowerConfig) -> None:
    tf, _ = tf_env.tensorflow()
    tf.keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()


def _fit(model, tfrecords_dir, window: str, config: TwoTowerConfig, epochs: int, learning_rate: float,
         last_weeks: int | None = None) -> dict:
    """Train on ``window``; with weekly-shard TFRecords optionally only its ``last_weeks`` weeks."""
    tf, _ = tf_env.tensorflow()
    manifest = tfr.load_manifest(tfrecords_dir)
    if "weeks" in manifest:
        weeks = tfr.weeks_of(manifest, window, last_weeks)
        ds, n = tfr.weekly_dataset(manifest, weeks, config.batch_size, config.shuffle_buffer, config.seed)
    else:
        if last_weeks is not None:
            raise ValueError(f"{tfrecords_dir}: training on the last weeks only needs weekly shards (write_weekly_window)")
        ds = tfr.read_dataset(
            tfr.window_paths(tfrecords_dir, window),
            manifest["feature_spec"],
            config.batch_size,
            shuffle_buffer=config.shuffle_buffer,
            seed=config.seed,
            compression=manifest.get("compression"),
        )
        n = manifest["windows"][window]["n_examples"]
    optimizer, epochs = resolved_fit(config, manifest["n_customers"], n, epochs)
    # the id tables' rate scales with the dense one (the fine-tune rate is a fraction of the training rate)
    embedding_rate = config.embedding_learning_rate * learning_rate / config.learning_rate
    model.compile(optimizer=_optimizer(tf, optimizer, learning_rate, model, embedding_rate))
    epoch_seconds: list[float] = []

    class _Timer(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_seconds.append(round(time.perf_counter() - self.t, 3))

    t0 = time.perf_counter()
    with tf.device(tf_env.tf_device()):
        hist = model.fit(ds, epochs=epochs, verbose=0, callbacks=[_Timer()])
    return {
        "window": window if last_weeks is None else f"{window}[-{last_weeks} weeks]",
        "loss": [round(float(v), 6) for v in hist.history["loss"]],
        "epoch_seconds": epoch_seconds,
        "seconds": round(time.perf_counter() - t0, 3),
        "n_examples": n,
        "steps_per_epoch": -(-n // config.batch_size),
        "learning_rate": learning_rate,
        "optimizer": optimizer,
        "device": tf_env.tf_device(),
    }


def fingerprint(images: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(images, dtype=np.float32).data, digest_size=16).hexdigest()


def _checkpoint(tower):
    """A checkpoint of the tower's weights except the image table.

    Why: the table (105k x 2049 float32 = 0.86 GB at full scale) is a fixed input, identical for every
    week and never trained; saving it made each checkpoint ~0.86 GB. It is re-attached at load from the
    image embeddings (``load_model(..., image_embeddings=...)``), checked against the fingerprint in
    ``model.json`` so a model never silently serves with other image features than it was trained with.
    """
    tf, _ = tf_env.tensorflow()
    table = getattr(tower, "image_table", None)
    return tf.train.Checkpoint(weights=[w for w in tower.weights if w is not table])


def _save(model, out_dir, config: TwoTowerConfig, manifest: dict, history: list[dict], tfrecords_dir,
          image_fingerprint: str | None, keyed: bool = False) -> Path:
    """Commit the model folder: replaceable (``io.atomic_path``), or ``keyed`` by content (a warm-start
    chain's link: ``io.create_once``, the first copy published wins and is the one used)."""
    meta = {
        "config": asdict(config),
        "week": manifest["week"],
        "tfrecords_dir": os.path.abspath(tfrecords_dir),  # by its name, not the version its link points to
        "n_customers": manifest["n_customers"],
        "n_articles": manifest["n_articles"],
        "vocab_sizes": manifest["vocab_sizes"],
        "image_shape": list(model.item_tower.image_table.shape) if model.item_tower.image_table is not None else None,
        "image_fingerprint": image_fingerprint,
    }
    with (io.create_once if keyed else io.atomic_path)(out_dir) as tmp:
        tmp.mkdir()
        _checkpoint(model.user_tower).write(str(tmp / USER_WEIGHTS))
        _checkpoint(model.item_tower).write(str(tmp / ITEM_WEIGHTS))
        (tmp / MODEL_META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        (tmp / HISTORY).write_text(json.dumps(history, indent=2) + "\n")
    return Path(out_dir)


ARCHITECTURE = ("output_dim", "user_id_dim", "item_id_dim", "product_dim", "categorical_dim", "image_dim", "hidden_dim",
                "use_images")


def _check_architecture(config: TwoTowerConfig, trained: TwoTowerConfig, model_dir) -> None:
    diff = [a for a in ARCHITECTURE if getattr(config, a) != getattr(trained, a)]
    if diff:
        raise ValueError(f"config differs from the trained model {model_dir} in architecture fields {diff}")


def train(
    tfrecords_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: TwoTowerConfig = TwoTowerConfig(),
    image_embeddings: pl.DataFrame | None = None,
    init_from: str | os.PathLike | None = None,
    keyed: bool = False,
) -> dict:
    """Train on the 365-day window from scratch, or (``init_from``: an earlier week's model) warm-start;
    save the tower weights to ``out_dir``.

    Warm start (needs ``config.warm_start`` and weekly-shard TFRecords, whose id tables are sized by the
    master tables so every week's towers have the same shapes): load ``init_from``'s weights, then train
    ``config.incremental_epochs`` on the newest ``config.incremental_weeks`` weeks only. ``init_from`` must
    be older than the target week; the caller picks it (a model of week W-1 saw only data before W-1).
    Returns the history: loss per epoch, seconds per epoch, examples, steps, device (+ ``init_from``).
    ``keyed``: ``out_dir`` is named by content (see ``_save``); another writer's copy may be the one kept.
    """
    if config.use_images and image_embeddings is None:
        raise ValueError("config.use_images is set: pass the image embeddings frame (or use_images=False)")
    if init_from is not None and not config.warm_start:
        raise ValueError("init_from given but config.warm_start is False: set it, or train from scratch")
    _seed(config)
    manifest = tfr.load_manifest(tfrecords_dir)
    images = image_matrix(image_embeddings, manifest["n_articles"]) if config.use_images else None
    model = build_model(manifest, config, images)
    if init_from is None:
        history = _fit(model, tfrecords_dir, "train", config, config.epochs, config.learning_rate)
    else:
        _warm_start(model, Path(init_from), manifest, config, images)
        history = _fit(model, tfrecords_dir, "train", config, config.incremental_epochs, config.learning_rate,
                       last_weeks=config.incremental_weeks)
        history["init_from"] = str(Path(init_from).resolve())
    _save(model, out_dir, config, manifest, [history], tfrecords_dir, fingerprint(images) if images is not None else None,
          keyed=keyed)
    return history


def _warm_start(model, init_from: Path, manifest: dict, config: TwoTowerConfig, images: np.ndarray | None) -> None:
    """Copy ``init_from``'s trained weights into ``model`` after checking that they fit and are older."""
    meta_path = init_from / MODEL_META
    if not meta_path.is_file():
        raise FileNotFoundError(f"no two-tower model to warm-start from at {init_from} ({MODEL_META} missing)")
    meta = json.loads(meta_path.read_text())
    _check_architecture(config, TwoTowerConfig.from_dict(meta["config"]), init_from)
    if meta["week"] >= manifest["week"]:
        raise ValueError(f"warm start for week {manifest['week']} from {init_from}, a model of week {meta['week']}: "
                         "it must be an earlier week's (it has seen that week's data)")
    if meta.get("vocab_sizes") != manifest["vocab_sizes"]:
        raise ValueError(f"{init_from} has other id tables than week {manifest['week']}'s TFRecords: warm starts need "
                         "weekly-shard TFRecords (write_weekly_window), whose tables are sized by the master tables")
    if images is not None and meta.get("image_fingerprint") != fingerprint(images):
        raise ValueError(f"{init_from} was trained with other image embeddings than the ones given")
    _checkpoint(model.user_tower).read(str(init_from / USER_WEIGHTS)).assert_consumed()
    _checkpoint(model.item_tower).read(str(init_from / ITEM_WEIGHTS)).assert_consumed()


def finetune(
    tfrecords_dir: str | os.PathLike,
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: TwoTowerConfig | None = None,
    image_embeddings: pl.DataFrame | None = None,
) -> dict:
    """Continue from the weights in ``model_dir`` on the last-30-day window with the fine-tune rate and epochs.

    ``config`` defaults to the trained model's; its architecture fields must match it. ``image_embeddings``:
    the frame the model was trained with (required when it uses images; checkpoints do not hold it).
    """
    model, meta = load_model(model_dir, tfrecords_dir, image_embeddings)
    trained_cfg = TwoTowerConfig.from_dict(meta["config"])
    config = config or trained_cfg
    _check_architecture(config, trained_cfg, model_dir)
    _seed(config)
    manifest = tfr.load_manifest(tfrecords_dir)
    history = _fit(model, tfrecords_dir, "finetune", config, config.finetune_epochs, config.finetune_learning_rate)
    previous = json.loads((Path(model_dir) / HISTORY).read_text())
    _save(model, out_dir, config, manifest, previous + [history], tfrecords_dir, meta.get("image_fingerprint"))
    return history


def load_model(
    model_dir: str | os.PathLike,
    tfrecords_dir: str | os.PathLike | None = None,
    image_embeddings: pl.DataFrame | None = None,
):
    """``(model, meta)`` restored from ``model_dir``; vocabularies come from the TFRecords it was trained on.

    A model that uses images needs ``image_embeddings``, the same frame it was trained with (checked by
    fingerprint): the checkpoint holds only the weights (see ``_checkpoint``).
    """
    model_dir = Path(model_dir)
    meta_path = model_dir / MODEL_META
    if not meta_path.is_file():
        raise FileNotFoundError(f"no two-tower model at {model_dir} ({MODEL_META} missing)")
    meta = json.loads(meta_path.read_text())
    config = TwoTowerConfig.from_dict(meta["config"])
    manifest = tfr.load_manifest(tfrecords_dir or meta["tfrecords_dir"])
    if manifest["week"] != meta["week"] or manifest["n_articles"] != meta["n_articles"]:
        raise ValueError(
            f"model {model_dir} was trained for week {meta['week']} ({meta['n_articles']} articles); "
            f"the TFRecords are for week {manifest['week']} ({manifest['n_articles']} articles)"
        )
    images = None
    if meta["image_shape"]:
        if image_embeddings is None:
            raise ValueError(f"model {model_dir} uses image features: pass the image embeddings frame it was "
                             "trained with (image_embeddings=...); checkpoints do not store the image table")
        images = image_matrix(image_embeddings, manifest["n_articles"])
        if fingerprint(images) != meta["image_fingerprint"]:
            raise ValueError(f"model {model_dir} was trained with other image embeddings than the ones given "
                             "(fingerprint differs): retrain it, or pass the embeddings it was trained with")
    model = build_model(manifest, config, images)
    _checkpoint(model.user_tower).read(str(model_dir / USER_WEIGHTS)).assert_consumed()
    _checkpoint(model.item_tower).read(str(model_dir / ITEM_WEIGHTS)).assert_consumed()
    return model, meta


def weights_of(model) -> list[np.ndarray]:
    """All tower weights as numpy arrays (fixed order), e.g. to compare two trainings."""
    return [w.numpy() for w in model.user_tower.weights + model.item_tower.weights]
