"""Images per second of the ResNet50 embedding (decode + resize + forward), on CPU and on CUDA when present.

    .venv/bin/python benchmarks/image_embeddings.py                       # 128 photo-sized JPEGs made here
    .venv/bin/python benchmarks/image_embeddings.py --data-dir data --n 256  # the first 256 images of a world

Without ``--data-dir`` it writes JPEGs of the real photos' size (1166 x 1750) so decoding costs what it
would on the Kaggle images. Prints one line per device and batch size, plus the decode-only rate.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hm_recsys.retrieval import image_embeddings as ie  # noqa: E402
from hm_recsys.retrieval import tf_env  # noqa: E402


def photo_like_jpegs(folder: Path, n: int, size=(1166, 1750)) -> list[Path]:
    from PIL import Image

    rng = np.random.default_rng(0)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    paths = []
    for i in range(n):
        base = rng.integers(30, 225, 3)
        img = np.empty((h, w, 3), dtype=np.uint8)
        shade = ((np.sin(xx / (40 + i)) + np.cos(yy / 55)) * 25).astype(np.int16)
        for c in range(3):
            img[..., c] = np.clip(base[c] + shade + rng.integers(-8, 8), 0, 255)
        path = folder / f"{i:010d}.jpg"
        Image.fromarray(img).save(path, quality=90)
        paths.append(path)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, help="a data folder with raw/images (default: generate photo-sized JPEGs)")
    ap.add_argument("--n", type=int, default=128, help="images to embed per measurement")
    ap.add_argument("--batch-sizes", default="32,64")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch = tf_env.torch()

    tmp = None
    if args.data_dir:
        paths = sorted((args.data_dir / "raw" / "images").rglob("*.jpg"))[: args.n]
        source = f"{args.data_dir}/raw/images"
    else:
        tmp = tempfile.TemporaryDirectory()
        paths = photo_like_jpegs(Path(tmp.name), args.n)
        source = "generated 1166x1750 JPEGs"
    if not paths:
        raise SystemExit(f"no images found under {source}")
    weights, state = ie.resolve_weights(allow_download=False)
    model = ie.build_model(state)
    print(f"source: {source} ({len(paths)} images); weights: {weights}; torch threads: {torch.get_num_threads()}; "
          f"cpus: {os.cpu_count()}")

    t0 = time.perf_counter()
    for i in range(len(paths)):
        ie._ImageFiles(paths)[i]
    print(f"decode+resize only: {len(paths) / (time.perf_counter() - t0):8.1f} images/s (1 process)")

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for bs in map(int, args.batch_sizes.split(",")):
            ie.embed_files(model, paths[: min(bs, len(paths))], bs, device)  # warm-up (cuDNN autotune, allocations)
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            ie.embed_files(model, paths, bs, device)
            if device == "cuda":
                torch.cuda.synchronize()
            rate = len(paths) / (time.perf_counter() - t0)
            print(f"{device:4s} batch {bs:4d}: {rate:8.1f} images/s -> 105,542 articles in {105_542 / rate / 60:7.1f} min")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
