"""Images per second of the ResNet50 embedding (decode + resize + forward), on CPU and on CUDA when present.

    .venv/bin/python benchmarks/image_embeddings.py                       # 128 photo-sized JPEGs made here
    .venv/bin/python benchmarks/image_embeddings.py --data-dir data --n 256  # the first 256 images of a world

Without ``--data-dir`` it writes JPEGs of the real photos' size (1166 x 1750) so decoding costs what it
would on the Kaggle images. Prints one line per device, precision (fp32, then autocast bf16/fp16 where the
device can run it) and batch size, plus the decode-only rate and the lowest cosine between the fp32 and the
mixed-precision vectors of the same images.
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
        mixed = ie.autocast_dtype(device, True)
        vectors = {}
        for precision in [False] + ([True] if mixed is not None else []):
            name = str(mixed).removeprefix("torch.") if precision else "fp32"
            for bs in map(int, args.batch_sizes.split(",")):
                ie.embed_files(model, paths[: min(bs, len(paths))], bs, device, mixed_precision=precision)  # warm-up
                if device == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                vectors[name], _ = ie.embed_files(model, paths, bs, device, mixed_precision=precision)
                if device == "cuda":
                    torch.cuda.synchronize()
                rate = len(paths) / (time.perf_counter() - t0)
                print(f"{device:4s} {name:8s} batch {bs:4d}: {rate:8.1f} images/s -> 105,542 articles in "
                      f"{105_542 / rate / 60:7.1f} min")
        if len(vectors) == 2:
            a, b = vectors.values()
            cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
            print(f"{device:4s} fp32 vs {name}: cosine min {cosine.min():.5f}, mean {cosine.mean():.5f}; "
                  f"default here: {'on' if ie.autocast_dtype(device) is not None else 'off'}")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
