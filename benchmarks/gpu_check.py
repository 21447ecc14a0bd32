"""The CUDA paths of the torch-side code, checked on a GPU machine: same answers as the CPU, and how fast.

What runs on a GPU when one is present (``tf_env.torch_device`` picks CUDA): the exact top-k retrieval
(``brute_force.top_k``) and ResNet50 image embeddings (``image_embeddings.embed_images``, bf16 autocast).
This script checks, on synthetic inputs with no data folder needed:

1. top-k: the full-scale shape (1.37M customers x 105k articles x 32-d, k=100) timed on the GPU, and the
   GPU's candidates against the CPU's for a slice of customers (same articles, same order, apart from
   near-ties that float rounding may swap);
2. ResNet50: embeddings of generated JPEGs on the GPU (bf16) against the CPU (fp32), cosine per image,
   and images per second at 224 px and at the synthetic worlds' 128 px.

    PYTHONPATH=. python benchmarks/gpu_check.py --out gpu_check.md     # needs torch, torchvision, polars, pillow

Prints a Markdown report (and writes it to --out). Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hm_recsys.retrieval import tf_env  # noqa: E402  (torch before anything else)

FULL_USERS, FULL_ITEMS, DIMS, K = 1_371_980, 105_542, 32, 100


def _sync(torch) -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def check_top_k(lines: list[str], users: int, items: int, cpu_users: int) -> bool:
    import numpy as np

    from hm_recsys.retrieval.brute_force import top_k

    rng = np.random.default_rng(0)
    u = rng.standard_normal((users, DIMS), dtype=np.float32)
    v = rng.standard_normal((items, DIMS), dtype=np.float32)
    torch = tf_env.torch()
    top_k(u[:1000], v, K, device="cuda")  # warm-up: CUDA context, kernels
    _sync(torch)
    t0 = time.perf_counter()
    gpu = top_k(u, v, K, device="cuda")
    seconds = time.perf_counter() - t0
    flop = 2.0 * users * items * DIMS
    lines.append(f"| top-{K}, {users:,} x {items:,} x {DIMS}-d, GPU | {seconds:.1f} s | "
                 f"{flop / seconds / 1e12:.1f} TFLOP/s of dot products incl. selection and copy-back |")
    t0 = time.perf_counter()
    cpu = top_k(u[:cpu_users], v, K, device="cpu")
    cpu_seconds = time.perf_counter() - t0
    g = gpu.filter(gpu["customer_idx"] < cpu_users)
    same_set = np.mean([len(set(a) & set(b)) / K for a, b in zip(
        g["article_idx"].to_numpy().reshape(cpu_users, K), cpu["article_idx"].to_numpy().reshape(cpu_users, K))])
    same_order = float((g["article_idx"].to_numpy() == cpu["article_idx"].to_numpy()).mean())
    score_gap = float(np.abs(g["score"].to_numpy() - cpu["score"].to_numpy()).max())
    lines.append(f"| top-{K}, first {cpu_users:,} customers, CPU | {cpu_seconds:.1f} s | "
                 f"GPU vs CPU: same articles {same_set:.5f}, same position {same_order:.5f}, max score gap {score_gap:.2e} |")
    return same_set > 0.999 and score_gap < 1e-3


def _jpegs(folder: Path, n: int, side: int) -> list[Path]:
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(side)
    paths = []
    for i in range(n):
        img = Image.new("RGB", (side, side), tuple(int(x) for x in rng.integers(180, 250, 3)))
        draw = ImageDraw.Draw(img)
        for _ in range(4):
            box = sorted(rng.integers(0, side, 2)), sorted(rng.integers(0, side, 2))
            draw.rectangle([box[0][0], box[1][0], box[0][1], box[1][1]], fill=tuple(int(x) for x in rng.integers(0, 255, 3)))
        path = folder / f"{side}_{i:05d}.jpg"
        img.save(path, quality=90)
        paths.append(path)
    return paths


def check_resnet(lines: list[str], n_images: int, cpu_images: int) -> bool:
    import numpy as np

    from hm_recsys.retrieval import image_embeddings as ie

    torch = tf_env.torch()
    model = ie.build_model(None)  # random init: no network there; the arithmetic is the same as with ImageNet weights
    ok_all = True
    with tempfile.TemporaryDirectory() as tmp:
        for side in (224, 128):
            paths = _jpegs(Path(tmp), n_images, side)
            ie.embed_files(model, paths[:256], batch_size=256, device="cuda")  # warm-up (cuDNN autotune)
            _sync(torch)
            t0 = time.perf_counter()
            gpu, ok = ie.embed_files(model, paths, batch_size=256, device="cuda")
            seconds = time.perf_counter() - t0
            t0 = time.perf_counter()
            cpu, ok_cpu = ie.embed_files(model, paths[:cpu_images], batch_size=32, device="cpu", mixed_precision=False)
            cpu_seconds = time.perf_counter() - t0
            a, b = gpu[:cpu_images], cpu
            cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
            precision = ie.autocast_dtype(torch.device("cuda"))
            lines.append(f"| ResNet50 {side} px, {n_images} images, GPU ({str(precision).removeprefix('torch.')}) | "
                         f"{seconds:.1f} s | {n_images / seconds:.0f} images/s (JPEG decode in "
                         f"{min(8, os.cpu_count() or 1)} workers included) |")
            lines.append(f"| ResNet50 {side} px, {cpu_images} images, CPU fp32 | {cpu_seconds:.1f} s | "
                         f"{cpu_images / cpu_seconds:.1f} images/s; GPU vs CPU cosine min {cosine.min():.4f} |")
            ok_all &= bool(ok.all() and ok_cpu.all() and cosine.min() > 0.99)
    return ok_all


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=FULL_USERS)
    parser.add_argument("--items", type=int, default=FULL_ITEMS)
    parser.add_argument("--cpu-users", type=int, default=20_000)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--cpu-images", type=int, default=64)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch = tf_env.torch()
    if not torch.cuda.is_available():
        print("no CUDA device visible to torch: nothing to check here")
        return 1
    props = torch.cuda.get_device_properties(0)
    lines = [f"# GPU check: {props.name}, {props.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, "
             f"{os.cpu_count()} CPU cores", "", "| check | wall | result |", "|---|---:|---|"]
    results = {}
    for name, fn in [("top_k", lambda: check_top_k(lines, args.users, args.items, args.cpu_users)),
                     ("resnet50", lambda: check_resnet(lines, args.images, args.cpu_images))]:
        try:
            results[name] = fn()
        except Exception as exc:  # noqa: BLE001 - report every check, then fail
            lines.append(f"| {name} | - | FAILED: {type(exc).__name__}: {exc} |")
            results[name] = False
        print("\n".join(lines), flush=True)
    lines += ["", "passed: " + ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in results.items())]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.write_text(report)
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
