"""The towers' training data as sharded TFRecord files of ``tf.train.Example``, and reading them back.

Why TFRecords: ``tf.data`` streams them from disk in parallel, so the 365-day window (16M rows at
full scale) never has to sit in memory as Python objects while the towers train. Examples are encoded
with numpy (the wire format of ``tf.train.Example`` written column-wise), ~20x faster than building one
proto per row; ``tests`` check the bytes parse back to exactly the written values.

Layout of ``out_dir`` (written into a temporary folder, then renamed: never half-written)::

    manifest.json                counts, windows, feature spec, vocabulary sizes, feature parameters
    train/part-00000-of-00008.tfrecord.gz ...   the 365-day window, rows shuffled
    finetune/part-...            the last 30 days
    user_features.parquet        every customer's user-tower features as of the cutoff (for serving)
    item_features.parquet        every article's item-tower features as of the cutoff (for serving)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import polars as pl

from hm_recsys import io
from hm_recsys.retrieval import tf_env
from hm_recsys.retrieval import tower_features as tfeat
from hm_recsys.tables import Tables
from hm_recsys.weeks import WEEK_DAYS, TargetWeek

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
USER_FEATURES = "user_features.parquet"
ITEM_FEATURES = "item_features.parquet"
# Weeks' shards written at once by threads: polars, numpy and TF's GZIP writer release the GIL, and a new
# window (52 weeks at full scale) otherwise left the second core idle on the critical path.
SHARD_WRITERS = 2


# --------------------------------------------------------------------------- Example wire encoding


def _varint(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Protobuf varints of non-negative ints: ``(bytes [n, 10] uint8, lengths [n])``."""
    v = np.asarray(values).astype(np.uint64)
    out = np.zeros((len(v), 10), dtype=np.uint8)
    lengths = np.ones(len(v), dtype=np.int64)
    for i in range(10):
        rest = v >> np.uint64(7 * (i + 1))
        more = rest != 0
        out[:, i] = ((v >> np.uint64(7 * i)) & np.uint64(0x7F)).astype(np.uint8) | np.where(more, 0x80, 0).astype(np.uint8)
        lengths += more
    return out, lengths


def _varint_bytes(value: int) -> bytes:
    b, n = _varint(np.array([value]))
    return b[0, : n[0]].tobytes()


def _ragged_concat(pieces: list[tuple[np.ndarray, np.ndarray]], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate per-row byte pieces (``[n, width]`` matrix + per-row lengths) into one flat buffer + offsets."""
    lengths = np.zeros(n, dtype=np.int64)
    for _, ln in pieces:
        lengths += ln
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.empty(int(offsets[-1]), dtype=np.uint8)
    pos = offsets[:-1].copy()
    for mat, ln in pieces:
        width = mat.shape[1]
        if np.all(ln == width):
            dest = pos[:, None] + np.arange(width)
            flat[dest.ravel()] = mat.ravel()
        else:
            mask = np.arange(width)[None, :] < ln[:, None]
            dest = pos[:, None] + np.arange(width)
            flat[dest[mask]] = mat[mask]
        pos += ln
    return flat, offsets


def encode_examples(columns: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Serialise rows as ``tf.train.Example`` bytes, column-wise.

    ``columns``: name -> int array ``[n]`` (an ``int64_list`` of one value, must be >= 0) or float32
    array ``[n, L]`` (a ``float_list`` of L values). Returns ``(flat uint8 buffer, offsets [n+1])``:
    row i is ``flat[offsets[i]:offsets[i+1]]``.
    """
    n = len(next(iter(columns.values())))
    feature_pieces: list[tuple[np.ndarray, np.ndarray]] = []
    for name, col in sorted(columns.items()):
        key = name.encode()
        if len(key) > 100:
            raise ValueError(f"feature name {name!r} too long")
        if col.shape[0] != n:
            raise ValueError(f"column {name!r} has {col.shape[0]} rows, expected {n}")
        if col.ndim == 1:
            if not np.issubdtype(col.dtype, np.integer):
                raise ValueError(f"column {name!r}: 1-d columns must be integers, got {col.dtype}")
            if n and col.min() < 0:
                raise ValueError(f"column {name!r}: negative value {int(col.min())} (ids must be >= 0)")
            vb, vl = _varint(col)
            l1 = 2 + vl                    # Int64List: tag, len, varint
            l2 = 2 + l1                    # Feature: tag(int64_list=3), len, Int64List
            l3 = 2 + len(key) + 2 + l2     # map entry: key field + value field
            head = np.zeros((n, 6 + len(key) + 4), dtype=np.uint8)
            head[:, 0] = 0x0A
            head[:, 1] = l3
            head[:, 2] = 0x0A
            head[:, 3] = len(key)
            head[:, 4 : 4 + len(key)] = np.frombuffer(key, dtype=np.uint8)
            k = 4 + len(key)
            head[:, k] = 0x12
            head[:, k + 1] = l2
            head[:, k + 2] = 0x1A
            head[:, k + 3] = l1
            head[:, k + 4] = 0x0A
            head[:, k + 5] = vl
            feature_pieces.append((head, np.full(n, head.shape[1], dtype=np.int64)))
            feature_pieces.append((vb, vl))
        elif col.ndim == 2:
            data = np.ascontiguousarray(col, dtype="<f4")
            nbytes = 4 * data.shape[1]
            float_list = b"\x0a" + _varint_bytes(nbytes)
            feature = b"\x12" + _varint_bytes(len(float_list) + nbytes) + float_list
            entry = b"\x0a" + bytes([len(key)]) + key + b"\x12" + _varint_bytes(len(feature) + nbytes) + feature
            head = b"\x0a" + _varint_bytes(len(entry) + nbytes) + entry
            feature_pieces.append((np.tile(np.frombuffer(head, dtype=np.uint8), (n, 1)), np.full(n, len(head), dtype=np.int64)))
            feature_pieces.append((data.view(np.uint8).reshape(n, nbytes), np.full(n, nbytes, dtype=np.int64)))
        else:
            raise ValueError(f"column {name!r}: expected 1-d ints or 2-d floats, got shape {col.shape}")
    # Example { Features features = 1 }, Features { map<string, Feature> feature = 1 }: the Example is
    # one length-delimited field 1 whose payload is the concatenated map entries built above.
    body_len = np.zeros(n, dtype=np.int64)
    for _, ln in feature_pieces:
        body_len += ln
    pieces = [(np.full((n, 1), 0x0A, dtype=np.uint8), np.ones(n, dtype=np.int64)), _varint(body_len)]
    return _ragged_concat(pieces + feature_pieces, n)


# --------------------------------------------------------------------------- writing


def _columns(frame: pl.DataFrame, spec: dict) -> dict[str, np.ndarray]:
    out = {}
    for name, s in spec.items():
        if s["dtype"] == "int64":
            out[name] = frame[name].to_numpy().astype(np.int64)
        else:
            values = frame[name].to_numpy()
            out[name] = np.asarray(values, dtype=np.float32).reshape(frame.height, -1)
    return out


def feature_spec_of(frame: pl.DataFrame) -> dict[str, dict]:
    """``{name: {"dtype": "int64"|"float32", "shape": [] | [L]}}`` for every column of an examples frame."""
    spec = {}
    for name, dtype in frame.schema.items():
        if dtype.is_integer():
            spec[name] = {"dtype": "int64", "shape": []}
        elif isinstance(dtype, pl.Array):
            spec[name] = {"dtype": "float32", "shape": [int(dtype.size)]}
        elif dtype.is_float():
            spec[name] = {"dtype": "float32", "shape": [1]}
        else:
            raise ValueError(f"examples column {name!r} has unsupported type {dtype}")
    return dict(sorted(spec.items()))


def _write_shards(tf, frame: pl.DataFrame, spec: dict, folder: Path, n_shards: int, compression: str | None) -> list[str]:
    folder.mkdir(parents=True)
    n_shards = max(1, min(n_shards, frame.height))
    bounds = np.linspace(0, frame.height, n_shards + 1).astype(np.int64)
    options = tf.io.TFRecordOptions(compression_type=compression or "")
    names = []
    for s in range(n_shards):
        part = frame.slice(int(bounds[s]), int(bounds[s + 1] - bounds[s]))
        flat, offsets = encode_examples(_columns(part, spec))
        buf = flat.tobytes()
        name = f"part-{s:05d}-of-{n_shards:05d}.tfrecord" + (".gz" if compression == "GZIP" else "")
        with tf.io.TFRecordWriter(str(folder / name), options) as writer:
            for i in range(part.height):
                writer.write(buf[offsets[i] : offsets[i + 1]])
        names.append(f"{folder.name}/{name}")
    return names


def _manifest_header(tables: Tables, week: TargetWeek, format_version: int, seed: int, n_shards: int,
                     compression: str | None, params: tfeat.FeatureParams, feature_spec: dict,
                     vocab_sizes: dict[str, int]) -> dict:
    """What both manifest formats start with: the week, how the shards were written, the feature spec and
    vocabulary sizes, and the feature names of each tower."""
    return {
        "format_version": format_version,
        "week": week.key,
        "cutoff": str(week.cutoff),
        "seed": seed,
        "n_shards": n_shards,
        "compression": compression,
        "feature_params": asdict(params),
        "n_customers": tables.n_customers,
        "n_articles": tables.n_articles,
        "feature_spec": feature_spec,
        "vocab_sizes": vocab_sizes,
        "user_tower_features": ["customer_key", "age", "price_sensitivity", "category_affinity", "channel_mix", "activity"],
        "item_tower_features": ["article_idx", "article_key", "product_key", "item_recency", "item_price",
                                *[tfeat.cat_column(c) for c in tfeat.categorical_vocabs(tables.articles)]],
    }


def write_tfrecords(
    tables: Tables,
    week: TargetWeek,
    out_dir: str | os.PathLike,
    n_shards: int = 8,
    seed: int = 0,
    params: tfeat.FeatureParams = tfeat.FeatureParams(),
    compression: str | None = "GZIP",
) -> dict:
    """Write the training (365-day) and fine-tuning (30-day) windows before ``week`` to ``out_dir``.

    GZIP by default: an Example repeats every feature name, so shards shrink ~5.7x (888 -> 157 bytes per
    example on the demo world) and tf.data reads them back as fast; ``compression=None`` writes plain files.

    Returns the manifest (also written as ``manifest.json``): per window the row / customer / article
    counts, date range and shard paths (relative to ``out_dir``); the feature spec; vocabulary sizes of
    every id / categorical feature; and how long encoding took. Same tables + week + seed -> same bytes.
    """
    if compression not in (None, "GZIP"):
        raise ValueError(f"compression must be None or 'GZIP', got {compression!r}")
    tf, _ = tf_env.tensorflow()
    t0 = time.perf_counter()
    users = tfeat.user_features(tables, week, params)
    items = tfeat.item_features(tables, week, params)
    keys = tfeat.id_keys(tables, week, params)
    vocabs = tfeat.categorical_vocabs(tables.articles)
    windows = {
        "train": tfeat.examples(tables, week, params.train_days, users, params, seed),
        "finetune": tfeat.examples(tables, week, params.finetune_days, users, params, seed + 1),
    }
    spec = feature_spec_of(windows["train"])
    features_seconds = time.perf_counter() - t0
    vocab_sizes = {
        "customer_key": tables.n_customers + 1,
        "article_key": tables.n_articles + 1,
        "product_key": int(keys["n_products"]) + 1,  # the products sold in the window (static_vocab_sizes: all)
        **{tfeat.cat_column(c): len(v) + 1 for c, v in vocabs.items()},
    }
    manifest = _manifest_header(tables, week, FORMAT_VERSION, seed, n_shards, compression, params, spec, vocab_sizes)
    manifest["windows"] = {}
    t1 = time.perf_counter()
    with io.atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for name, frame in windows.items():
            days = params.train_days if name == "train" else params.finetune_days
            shards = _write_shards(tf, frame, spec, tmp / name, n_shards, compression)
            manifest["windows"][name] = {
                "days": days,
                "first_day": str(week.cutoff - dt.timedelta(days=days)),
                "last_day": str(week.cutoff - dt.timedelta(days=1)),
                "n_examples": frame.height,
                "n_customers": frame["customer_idx"].n_unique(),
                "n_articles": frame["article_idx"].n_unique(),
                "shards": shards,
            }
        users.write_parquet(tmp / USER_FEATURES, compression="zstd")
        items.write_parquet(tmp / ITEM_FEATURES, compression="zstd")
        write_seconds = time.perf_counter() - t1
        n_total = sum(w["n_examples"] for w in manifest["windows"].values())
        manifest["timing"] = {
            "features_seconds": round(features_seconds, 3),
            "write_seconds": round(write_seconds, 3),
            "examples_per_second_written": round(n_total / write_seconds, 1) if write_seconds else None,
        }
        # timing varies between runs; keep it out of the bytes the leakage test compares
        (tmp / MANIFEST).write_text(json.dumps({k: v for k, v in manifest.items() if k != "timing"}, indent=2, sort_keys=True) + "\n")
        (tmp / "timing.json").write_text(json.dumps(manifest["timing"], indent=2) + "\n")
    return manifest


def load_manifest(tfrecords_dir: str | os.PathLike) -> dict:
    path = Path(tfrecords_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no TFRecord manifest at {path} (run write_tfrecords first)")
    manifest = json.loads(path.read_text())
    if manifest.get("format_version") not in (FORMAT_VERSION, WEEKLY_FORMAT_VERSION):
        raise ValueError(f"{path}: format_version {manifest.get('format_version')} != {FORMAT_VERSION}; rewrite the TFRecords")
    return manifest


def window_paths(tfrecords_dir: str | os.PathLike, window: str) -> list[str]:
    manifest = load_manifest(tfrecords_dir)
    if window not in manifest["windows"]:
        raise ValueError(f"window {window!r} not in {sorted(manifest['windows'])}")
    root = Path(manifest.get("shards_root", tfrecords_dir))
    return [str(root / p) for p in manifest["windows"][window]["shards"]]


# --------------------------------------------------------------------------- reading


def parse_spec(feature_spec: dict) -> dict:
    tf, _ = tf_env.tensorflow()
    dtypes = {"int64": tf.int64, "float32": tf.float32}
    return {name: tf.io.FixedLenFeature(s["shape"], dtypes[s["dtype"]]) for name, s in feature_spec.items()}


def read_dataset(
    paths: list[str],
    feature_spec: dict,
    batch_size: int,
    shuffle_buffer: int = 0,
    seed: int | None = None,
    compression: str | None = None,
    drop_remainder: bool = False,
):
    """``tf.data.Dataset`` of feature dicts (batched, parsed); shards read in order, optionally reshuffled per epoch."""
    tf, _ = tf_env.tensorflow()
    if not paths:
        raise ValueError("read_dataset: no TFRecord paths given")
    for p in paths:
        if not Path(p).is_file():
            raise FileNotFoundError(f"TFRecord shard {p} does not exist")
    if compression is None and all(str(p).endswith(".gz") for p in paths):
        compression = "GZIP"
    ds = tf.data.TFRecordDataset(
        list(map(str, paths)), compression_type=compression or "", num_parallel_reads=min(len(paths), 4) if len(paths) > 1 else None
    )
    if shuffle_buffer:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    spec = parse_spec(feature_spec)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(lambda x: tf.io.parse_example(x, spec), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def load_serving_features(tfrecords_dir: str | os.PathLike) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(user_features, item_features)`` frames as of the cutoff, saved beside the TFRecords."""
    d = Path(tfrecords_dir)
    return pl.read_parquet(d / USER_FEATURES), pl.read_parquet(d / ITEM_FEATURES)


# --------------------------------------------------------------------------- weekly shards
#
# Why: a target week's 365-day window shares 51 of 52 weeks with the previous target week's. Written
# once per calendar week (purchases of that week, features as of that week's start, ids keyed by the
# master tables), a shard serves every later target week whose window covers it; a week's "TFRecords"
# is then only a manifest naming its shards plus the serving features.
#
#     shards_root/<week key>/<content key>/part-*.tfrecord.gz, shard.json, article_counts.parquet
#     out_dir/manifest.json (format 2, windows = lists of week keys, shard_dirs), user_features / item_features.parquet
#
# The content key (``shard_keys``) hashes everything a shard is computed from, so a shard is reused only
# when rewriting it would give the same bytes: a changed old row or master table writes new shards.

WEEKLY_FORMAT_VERSION = 2
SHARD_META = "shard.json"
ARTICLE_COUNTS = "article_counts.parquet"
TRAIN_WEEKS = 52
FINETUNE_WEEKS = 4


def static_keys(tables: Tables) -> dict[str, np.ndarray]:
    """Embedding keys from the master tables alone: ``idx + 1`` per customer / article, product = rank of
    its ``product_code`` among all codes + 1. Same for every week, so towers of consecutive weeks share
    their id tables (warm starts) and shards written for one week serve every later one."""
    codes = tables.articles["product_code"].to_numpy()
    products, product_rank = np.unique(codes, return_inverse=True)
    return {
        "customer_key": np.arange(tables.n_customers, dtype=np.int64) + 1,
        "article_key": np.arange(tables.n_articles, dtype=np.int64) + 1,
        "product_key": product_rank.astype(np.int64) + 1,
        "n_products": np.int64(len(products)),
    }


def static_vocab_sizes(tables: Tables) -> dict[str, int]:
    keys = static_keys(tables)
    return {
        "customer_key": tables.n_customers + 1,
        "article_key": tables.n_articles + 1,
        "product_key": int(keys["n_products"]) + 1,
        **{tfeat.cat_column(c): len(v) + 1 for c, v in tfeat.categorical_vocabs(tables.articles).items()},
    }


def _serving_keys(tables: Tables, week: TargetWeek, params: tfeat.FeatureParams) -> dict[str, np.ndarray]:
    """Static keys for ids seen in the training window, 0 (the trained "unknown" row) for the others."""
    seen = tfeat.id_keys(tables, week, params)
    static = static_keys(tables)
    return {name: np.where(seen[name] > 0, static[name], 0) for name in ("customer_key", "article_key", "product_key")}


def week_examples(tables: Tables, shard_week: TargetWeek, params: tfeat.FeatureParams = tfeat.FeatureParams(),
                  seed: int = 0, shared: tfeat.SharedInputs | None = None) -> pl.DataFrame:
    """The purchases of ``shard_week`` with every tower feature as of its start (user features included),
    static keys, rows shuffled; no ``item_prob`` (it depends on the window, added when reading). ``shared``:
    ``tfeat.SharedInputs`` to this week's end or later (the same rows, without recomputing the history)."""
    buyers = tables.transactions.filter((pl.col("t_dat") >= shard_week.start) & (pl.col("t_dat") < shard_week.end))
    users = tfeat.user_features(tables, shard_week, params, customers=buyers["customer_idx"].unique().to_numpy(),
                                shared=shared)
    rows = tfeat.examples(tables, shard_week.shift(1), WEEK_DAYS, users, params, seed, shared).drop("item_prob")
    static = static_keys(tables)
    return rows.with_columns(
        customer_key=pl.Series(static["customer_key"][rows["customer_idx"].to_numpy()]),
        # point_in_time_keys may have set 0 ("unknown then"): keep those zeros
        article_key=pl.when(pl.col("article_key") > 0).then(pl.Series(static["article_key"][rows["article_idx"].to_numpy()])).otherwise(0),
        product_key=pl.when(pl.col("product_key") > 0).then(pl.Series(static["product_key"][rows["article_idx"].to_numpy()])).otherwise(0),
    )


def window_weeks(week: TargetWeek, train_weeks: int = TRAIN_WEEKS) -> list[TargetWeek]:
    """The shard weeks of ``week``'s training window, oldest first (the weeks before it)."""
    return [week.shift(-i) for i in range(train_weeks, 0, -1)]


def shard_keys(tables: Tables, weeks: list[TargetWeek], params: tfeat.FeatureParams = tfeat.FeatureParams(),
               seed: int = 0, compression: str | None = "GZIP", n_shards: int = 1) -> dict[str, str]:
    """A content key per shard week: a hash of every transaction before the week's end, both master
    tables and the writing parameters.

    Chained calendar week by calendar week from the data's first one, so a week's key does not depend
    on which other weeks were asked for: a changed row changes the key of its week and of every later
    week, an appended week changes none of the earlier keys.
    """
    import hashlib

    from hm_recsys import content_hash

    if not weeks:
        return {}
    static = hashlib.blake2b(digest_size=16)
    static.update(json.dumps({"format": WEEKLY_FORMAT_VERSION, "features": tfeat.FEATURES_VERSION, "params": asdict(params),
                              "seed": seed, "compression": compression, "n_shards": n_shards}, sort_keys=True).encode())
    # content_hash, not hash_rows: the keys must not change with the polars version. The empty frame
    # stands for the transactions' columns and dtypes (in content_hash's own dtype names).
    for frame in (tables.transactions.head(0), tables.articles, tables.customers):
        content_hash.update(static, frame)
    ref = min(w.start for w in weeks)
    epoch_days = (ref - dt.date(1970, 1, 1)).days
    rows = tables.transactions.filter(pl.col("t_dat") < max(w.end for w in weeks))
    week_idx = (rows["t_dat"].cast(pl.Int32).to_numpy().astype(np.int64) - epoch_days) // WEEK_DAYS
    order = np.argsort(week_idx, kind="stable")
    week_idx, rows = week_idx[order], rows[order]
    data_weeks = np.unique(week_idx)
    chain, done, keys = static, 0, {}
    for w in sorted(weeks, key=lambda w: w.start):
        upto = (w.start - ref).days // WEEK_DAYS
        for idx in data_weeks[done:][data_weeks[done:] <= upto]:
            lo, hi = np.searchsorted(week_idx, [idx, idx + 1])
            chain.update(int(idx + epoch_days // WEEK_DAYS).to_bytes(8, "little", signed=True))
            content_hash.update(chain, rows.slice(int(lo), int(hi - lo)))
            done += 1
        last = chain.copy()
        last.update(w.key.encode())
        keys[w.key] = last.hexdigest()
    return keys


def write_week_shard(tables: Tables, shard_week: TargetWeek, shards_root: str | os.PathLike, n_shards: int = 1,
                     seed: int = 0, params: tfeat.FeatureParams = tfeat.FeatureParams(),
                     compression: str | None = "GZIP", key: str | None = None,
                     shared: tfeat.SharedInputs | None = None) -> dict:
    """Write ``shards_root/<shard_week>[/<key>]/`` (atomically) unless it exists; returns its ``shard.json``.

    Reads only transactions before ``shard_week.end``. A week without purchases gets a shard of no files.
    ``key`` (``shard_keys``) names the folder by content, so a folder that exists is the right one. Safe
    with no lock when several processes or hosts write the same shard at once: each writes its own
    temporary, the first to publish wins (``io.create_once``) and the others use its files.
    """
    folder = Path(shards_root) / shard_week.key
    if key:
        folder = folder / key
    if (folder / SHARD_META).is_file():
        return json.loads((folder / SHARD_META).read_text())
    tf, _ = tf_env.tensorflow()
    has_rows = tables.transactions.filter(
        (pl.col("t_dat") >= shard_week.start) & (pl.col("t_dat") < shard_week.end)).height > 0
    rows = week_examples(tables, shard_week, params, seed + shard_week.start.toordinal(), shared) if has_rows else None
    meta = {
        "format_version": WEEKLY_FORMAT_VERSION,
        "week": shard_week.key,
        "key": key,
        "seed": seed,
        "compression": compression,
        "feature_params": asdict(params),
        "n_examples": rows.height if rows is not None else 0,
        "vocab_sizes": static_vocab_sizes(tables),
        "feature_spec": feature_spec_of(rows) if rows is not None else None,
        "files": [],
    }
    with io.create_once(folder) as tmp:
        if rows is not None:
            meta["files"] = [Path(p).name for p in _write_shards(tf, rows, meta["feature_spec"], tmp, n_shards, compression)]
            counts = rows.group_by("article_idx").agg(n=pl.len().cast(pl.Int64)).sort("article_idx")
        else:
            tmp.mkdir()
            counts = pl.DataFrame(schema={"article_idx": pl.Int32, "n": pl.Int64})
        counts.write_parquet(tmp / ARTICLE_COUNTS)
        (tmp / SHARD_META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return json.loads((folder / SHARD_META).read_text())  # ours, or an identical one published first


def write_weekly_window(tables: Tables, week: TargetWeek, shards_root: str | os.PathLike, out_dir: str | os.PathLike,
                        n_shards: int = 1, seed: int = 0, params: tfeat.FeatureParams = tfeat.FeatureParams(),
                        compression: str | None = "GZIP", train_weeks: int = TRAIN_WEEKS,
                        finetune_weeks: int = FINETUNE_WEEKS, serving: bool = True,
                        writers: int = SHARD_WRITERS, keyed: bool = False) -> dict:
    """The towers' inputs for target ``week`` from weekly shards: writes the shards of the ``train_weeks``
    weeks before ``week`` that do not exist yet, then ``out_dir`` = manifest + serving features.

    Windows are whole weeks (52 = 364 days, 4 = 28 days, vs 365 / 30 in ``write_tfrecords``). The
    manifest reads like ``write_tfrecords``' for ``two_tower`` (``window_paths``, ``feature_spec``,
    ``vocab_sizes``) plus ``weeks``: per window the week keys, oldest first, and ``shard_dirs``: each week's
    folder under ``shards_root``. Same inputs -> same bytes. ``serving=False`` skips the serving features
    (a window only trained on, as the links of a warm-start chain). ``writers`` threads write the missing
    shards (each week's bytes are its own, so any number gives the same files). Steps of other weeks (on
    other hosts too) may write the same shards at the same time: no lock, the first copy published wins.
    ``keyed``: ``out_dir`` is named by content (a chain's window): published once, never replaced.
    """
    if finetune_weeks > train_weeks:
        raise ValueError(f"finetune_weeks {finetune_weeks} > train_weeks {train_weeks}")
    shards_root = Path(shards_root).resolve()
    weeks = window_weeks(week, train_weeks)
    vocab = static_vocab_sizes(tables)
    keys = shard_keys(tables, weeks, params, seed, compression, n_shards)
    dirs = {w.key: f"{w.key}/{keys[w.key]}" for w in weeks}
    shards_root.mkdir(parents=True, exist_ok=True)
    missing = [w for w in weeks if not (shards_root / dirs[w.key] / SHARD_META).is_file()]
    # Computed once for all missing weeks (~10 s at full scale against ~6 s saved per week): pays from two weeks.
    shared = tfeat.SharedInputs.of(tables, week) if len(missing) > 1 else None
    with ThreadPoolExecutor(max(1, writers)) as pool:
        metas = list(pool.map(lambda w: write_week_shard(tables, w, shards_root, n_shards, seed, params,
                                                         compression, key=keys[w.key], shared=shared), weeks))
    specs = {json.dumps(m["feature_spec"], sort_keys=True) for m in metas if m["feature_spec"]}
    if len(specs) != 1:
        raise ValueError(f"week shards under {shards_root} disagree on (or lack) the feature spec: rewrite them")
    if serving:
        users = tfeat.user_features(tables, week, params)
        items = tfeat.item_features(tables, week, params)
        serving_keys = _serving_keys(tables, week, params)
        users = users.with_columns(customer_key=pl.Series(serving_keys["customer_key"]))
        items = items.with_columns(article_key=pl.Series(serving_keys["article_key"]),
                                   product_key=pl.Series(serving_keys["product_key"]))
    windows = {"train": metas, "finetune": metas[len(metas) - finetune_weeks:]}
    manifest = _manifest_header(tables, week, WEEKLY_FORMAT_VERSION, seed, n_shards, compression, params,
                                json.loads(specs.pop()), vocab)
    manifest |= {
        "shards_root": str(shards_root),
        "weeks": {name: [m["week"] for m in ms] for name, ms in windows.items()},
        "shard_dirs": dirs,
        "windows": {
            name: {
                "first_day": str(dt.date.fromisoformat(ms[0]["week"])),
                "last_day": str(week.cutoff - dt.timedelta(days=1)),
                "n_examples": sum(m["n_examples"] for m in ms),
                "shards": [f"{dirs[m['week']]}/{f}" for m in ms for f in m["files"]],
            }
            for name, ms in windows.items()
        },
    }
    with (io.create_once if keyed else io.atomic_path)(out_dir) as tmp:
        tmp.mkdir()
        if serving:
            users.write_parquet(tmp / USER_FEATURES, compression="zstd")
            items.write_parquet(tmp / ITEM_FEATURES, compression="zstd")
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return load_manifest(out_dir) if keyed else manifest  # keyed: ours, or an identical one published first


def weeks_of(manifest: dict, window: str, last: int | None = None) -> list[str]:
    """Week keys of a weekly window (oldest first), optionally only the ``last`` ones."""
    if "weeks" not in manifest:
        raise ValueError(f"TFRecords of week {manifest['week']} are not weekly shards (write_weekly_window)")
    weeks = manifest["weeks"][window]
    return weeks[len(weeks) - last:] if last else weeks


def weekly_dataset(manifest: dict, weeks: list[str], batch_size: int, shuffle_buffer: int = 0,
                   seed: int | None = None) -> tuple[object, int]:
    """``(dataset, n_examples)`` over the shards of ``weeks``, with ``item_prob`` = each article's share of
    those weeks' rows (the logQ correction's sampling probability) looked up by ``article_idx``."""
    tf, _ = tf_env.tensorflow()
    root = Path(manifest["shards_root"])
    counts = np.zeros(manifest["n_articles"], dtype=np.float64)
    paths = []
    for w in weeks:
        folder = root / manifest.get("shard_dirs", {}).get(w, w)
        meta = json.loads((folder / SHARD_META).read_text())
        paths += [str(folder / f) for f in meta["files"]]
        c = pl.read_parquet(folder / ARTICLE_COUNTS)
        np.add.at(counts, c["article_idx"].to_numpy(), c["n"].to_numpy())
    n = int(counts.sum())
    if n == 0:
        raise ValueError(f"weeks {weeks[0]}..{weeks[-1]} hold no purchases: nothing to train the towers on")
    prob = tf.constant((counts / n).astype(np.float32))
    ds = read_dataset(paths, manifest["feature_spec"], batch_size, shuffle_buffer, seed, manifest["compression"])
    ds = ds.map(lambda f: {**f, "item_prob": tf.gather(prob, f["article_idx"])[:, None]})
    return ds, n
