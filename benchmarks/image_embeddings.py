"""Images per second of the ResNet50 embedding (decode + resize + forward), on CPU and on CUDA when present.

    .venv/bin/python benchmarks/image_embeddings.py                       # 128 photo-sized JPEGs made here
    .venv/bin/python benchmarks/image_embeddings.py --data-dir data --n 256  # the first 256 images of a world

    .venv/bin/python benchmarks/image_embeddings.py --n 64 --batched 32    # + the former CPU batches of 32

Without ``--data-dir`` it writes JPEGs of the real photos' size (1166 x 1750) so decoding costs what it
would on the Kaggle images. Prints one line per device, precision (fp32, then autocast bf16/fp16 where the
device can run it) and batch size (CUDA; the CPU runs forwards of ``CPU_BATCH`` rows on single-threaded
workers), plus the decode-only rate and the lowest cosine between the fp32 and the mixed-precision vectors of
the same images. Every line says whether two photos' vectors are byte-identical embedded alone and among the
others (incremental equals from scratch).
``--batched B``: also times the CPU scheme used before (batches of B on all intra-op threads, decoding in
the main thread) in the same process, and how far its vectors move with the batch (max abs difference).
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


def batched_reference(torch, model, paths: list[Path], batch_size: int, dtype) -> np.ndarray:
    """The former CPU scheme: batches (the last one short) on all intra-op threads, decoding in this thread."""
    files = ie._ImageFiles(paths, ie.input_side(paths[0]))  # the generated photos share one side
    out = np.zeros((len(paths), ie.EMBEDDING_DIM), dtype=np.float32)
    model = model.to(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
        for start in range(0, len(paths), batch_size):
            batch = torch.stack([files[i][0] for i in range(start, min(start + batch_size, len(paths)))])
            out[start : start + len(batch)] = model(batch.contiguous(memory_format=torch.channels_last)).float().numpy()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, help="a data folder with raw/images (default: generate photo-sized JPEGs)")
    ap.add_argument("--n", type=int, default=128, help="images to embed per measurement")
    ap.add_argument("--batch-sizes", default="32,64", help="CUDA batch sizes (the CPU: ie.CPU_BATCH)")
    ap.add_argument("--batched", type=int, default=0, help="also time the former CPU batches of this size")
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
            for bs in map(int, args.batch_sizes.split(",")) if device != "cpu" else [1]:
                probe = sorted({0, min(5, len(paths) - 1)})  # a photo at the start and one inside a forward
                alone = [ie.embed_files(model, [paths[k]], bs, device, mixed_precision=precision)[0][0]  # + warm-up
                         for k in probe]
                if device == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                vectors[name], _ = ie.embed_files(model, paths, bs, device, mixed_precision=precision)
                if device == "cuda":
                    torch.cuda.synchronize()
                rate = len(paths) / (time.perf_counter() - t0)
                how = (f"batch {bs:4d}" if device != "cpu"
                       else f"batch {ie.CPU_BATCH:4d} x {torch.get_num_threads()} single-thread workers")
                same = all(a.tobytes() == vectors[name][k].tobytes() for a, k in zip(alone, probe))
                print(f"{device:4s} {name:8s} {how}: {rate:8.1f} images/s -> 105,542 articles in "
                      f"{105_542 / rate / 60:7.1f} min; alone == among others: {same}")
            if device == "cpu" and args.batched:
                dtype = ie.autocast_dtype(device, precision)
                batched_reference(torch, model, paths[: min(args.batched, len(paths))], args.batched, dtype)  # warm-up
                t0 = time.perf_counter()
                before = batched_reference(torch, model, paths, args.batched, dtype)
                rate = len(paths) / (time.perf_counter() - t0)
                drift = np.abs(before - vectors[name]).max()
                print(f"{device:4s} {name:8s} former batch {args.batched:4d} on {torch.get_num_threads()} intra-op "
                      f"threads: {rate:8.1f} images/s -> 105,542 articles in {105_542 / rate / 60:7.1f} min; "
                      f"max |former - now| {drift:.2e}")
        if len(vectors) == 2:
            a, b = vectors.values()
            cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
            print(f"{device:4s} fp32 vs {name}: cosine min {cosine.min():.5f}, mean {cosine.mean():.5f}; "
                  f"default here: {'on' if ie.autocast_dtype(device) is not None else 'off'}")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
