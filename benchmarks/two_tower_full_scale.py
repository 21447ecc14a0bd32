"""Full-scale cost of training the two towers: seconds per step with full-size vocabularies (1.37M customers,
105k articles), extrapolated to one epoch of the 365-day window. Prints time and peak memory (RSS).

    .venv/bin/python benchmarks/two_tower_full_scale.py --steps 30 --batch-size 1024 --deterministic --optimizer sparse_adam
    .venv/bin/python benchmarks/two_tower_full_scale.py --steps 30 --optimizer adam     # batch 4096

Training runs in its own process so its peak RSS is its own. The training rows are random (cost does not
depend on their values); the towers are the real ones, read from real TFRecord shards (written with the
project's encoder), for ``--steps`` batches, and the median step is extrapolated to an epoch of the 365-day
window at full scale (31.79M rows x 365/734 days x 0.906 non-duplicate share = 14.3M examples).
The exact top-100 over the same shapes: ``benchmarks/topk_full_scale.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

N_CUSTOMERS = 1_371_980
N_ARTICLES = 105_542
N_PRODUCTS = 47_224
FULL_EPOCH_EXAMPLES = int(31_788_324 * 365 / 734 * 0.906)
# real vocabulary sizes (hm-data-facts): distinct codes per attribute, + 1 for "unknown"
CATEGORICAL_VOCABS = {
    "product_type_no": 132, "product_group_name": 19, "graphical_appearance_no": 30, "colour_group_code": 50,
    "perceived_colour_value_id": 8, "perceived_colour_master_id": 20, "department_no": 299, "index_code": 10,
    "index_group_no": 5, "section_no": 57, "garment_group_no": 21,
}
AFFINITY_DIM = (5 + 1) + (19 + 1) + (21 + 1)


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def train(steps: int, batch: int, use_images: bool, optimizer: str, deterministic: bool = False) -> dict:
    from hm_recsys.retrieval import tf_env

    tf, _ = tf_env.tensorflow()
    from hm_recsys.retrieval import tfrecords as tfr
    from hm_recsys.retrieval import two_tower

    rng = np.random.default_rng(0)
    n = steps * batch
    popularity = 1.0 / np.arange(1, N_ARTICLES + 1) ** 0.9
    popularity /= popularity.sum()
    art = rng.choice(N_ARTICLES, n, p=popularity)
    cols = {
        "customer_idx": rng.integers(0, N_CUSTOMERS, n),
        "article_idx": art,
        "item_prob": popularity[art].astype(np.float32)[:, None],
        "age": rng.standard_normal((n, 2), dtype=np.float32),
        "price_sensitivity": rng.standard_normal((n, 2), dtype=np.float32),
        "category_affinity": rng.dirichlet(np.ones(AFFINITY_DIM), n).astype(np.float32),
        "channel_mix": rng.random((n, 2), dtype=np.float32),
        "activity": rng.random((n, 2), dtype=np.float32),
        "item_recency": rng.random((n, 4), dtype=np.float32),
        "item_price": rng.random((n, 2), dtype=np.float32),
    }
    cols["customer_key"] = cols["customer_idx"] + 1
    cols["article_key"] = art + 1
    cols["product_key"] = art % N_PRODUCTS + 1
    for c, v in CATEGORICAL_VOCABS.items():
        cols[f"cat_{c}"] = rng.integers(0, v + 1, n)
    spec = {k: {"dtype": "int64", "shape": []} if v.ndim == 1 else {"dtype": "float32", "shape": [v.shape[1]]}
            for k, v in sorted(cols.items())}
    manifest = {
        "n_customers": N_CUSTOMERS,
        "n_articles": N_ARTICLES,
        "feature_spec": spec,
        "vocab_sizes": {"customer_key": N_CUSTOMERS + 1, "article_key": N_ARTICLES + 1, "product_key": N_PRODUCTS + 1,
                        **{f"cat_{c}": v + 1 for c, v in CATEGORICAL_VOCABS.items()}},
        "item_tower_features": ["article_idx", "article_key", "product_key", "item_recency", "item_price",
                                *[f"cat_{c}" for c in CATEGORICAL_VOCABS]],
    }
    with tempfile.TemporaryDirectory() as tmp:
        n_shards = 8
        bounds = np.linspace(0, n, n_shards + 1).astype(int)
        paths = []
        for s in range(n_shards):
            flat, offsets = tfr.encode_examples({k: v[bounds[s]:bounds[s + 1]] for k, v in cols.items()})
            buf = flat.tobytes()
            path = f"{tmp}/part-{s}.tfrecord"
            with tf.io.TFRecordWriter(path) as w:
                for i in range(len(offsets) - 1):
                    w.write(buf[offsets[i]:offsets[i + 1]])
            paths.append(path)
        del cols
        cfg = two_tower.TwoTowerConfig(use_images=use_images, deterministic=deterministic, optimizer=optimizer)
        images = rng.standard_normal((N_ARTICLES, 2049), dtype=np.float32) if use_images else None
        tf.keras.utils.set_random_seed(0)
        if deterministic:  # as the pipeline trains (TwoTowerConfig.deterministic)
            tf.config.experimental.enable_op_determinism()
        model = two_tower.build_model(manifest, cfg, images)
        del images
        model.compile(optimizer=two_tower._optimizer(tf, optimizer, cfg.learning_rate, model, cfg.embedding_learning_rate))
        ds = tfr.read_dataset(paths, spec, batch, shuffle_buffer=cfg.shuffle_buffer, seed=0, drop_remainder=True)
        times: list[float] = []

        class StepTimer(tf.keras.callbacks.Callback):
            def on_train_batch_begin(self, b, logs=None):
                self.t = time.perf_counter()

            def on_train_batch_end(self, b, logs=None):
                times.append(time.perf_counter() - self.t)

        t0 = time.perf_counter()
        with tf.device(tf_env.tf_device()):
            model.fit(ds, epochs=1, verbose=0, callbacks=[StepTimer()])
        wall = time.perf_counter() - t0
    warm = times[3:] if len(times) > 6 else times
    step = float(np.median(warm))
    full_steps = -(-FULL_EPOCH_EXAMPLES // batch)
    return {
        "part": "train",
        "device": tf_env.tf_device(),
        "use_images": use_images,
        "optimizer": optimizer,
        "deterministic": deterministic,
        "batch_size": batch,
        "steps_measured": len(times),
        "wall_seconds_measured": round(wall, 1),
        "first_step_seconds": round(times[0], 2),
        "median_step_seconds": round(step, 3),
        "examples_per_second": round(batch / step),
        "full_epoch_examples": FULL_EPOCH_EXAMPLES,
        "full_epoch_steps": full_steps,
        "full_epoch_minutes_extrapolated": round(full_steps * step / 60, 1),
        "peak_rss_gib": round(peak_rss_gib(), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--no-images", action="store_true")
    ap.add_argument("--optimizer", default="adam", choices=["adam", "adagrad", "sparse_adam"])
    ap.add_argument("--deterministic", action="store_true", help="enable op determinism, as the pipeline does")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(train(args.steps, args.batch_size, not args.no_images, args.optimizer, args.deterministic)))
        return
    print(f"machine: {os.cpu_count()} CPUs; {N_CUSTOMERS:,} customers x {N_ARTICLES:,} articles")
    cmd = [sys.executable, __file__, "--child", "--steps", str(args.steps), "--batch-size", str(args.batch_size),
           "--optimizer", args.optimizer]
    cmd += (["--no-images"] if args.no_images else []) + (["--deterministic"] if args.deterministic else [])
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        print(res.stderr[-3000:])
        raise SystemExit("training failed")
    result = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"training (batch {result['batch_size']}, {result['optimizer']}, images={result['use_images']}): median step "
          f"{result['median_step_seconds']} s = {result['examples_per_second']:,} examples/s over "
          f"{result['steps_measured']} steps -> one full 365-day epoch ({result['full_epoch_examples']:,} examples, "
          f"{result['full_epoch_steps']:,} steps) ~{result['full_epoch_minutes_extrapolated']} min (extrapolated); "
          f"peak RSS {result['peak_rss_gib']} GiB; device {result['device']}")
    print("  " + json.dumps(result))

if __name__ == "__main__":
    main()
