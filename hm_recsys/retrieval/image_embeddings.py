"""ResNet50 image embeddings of article photos (2048-d penultimate layer), computed incrementally.

Why: the item tower needs to know what an article looks like so that articles with no sales yet can
still be retrieved. Embedding 105k photos costs minutes to hours, so a rerun reuses every vector whose
image file (content hash) and network weights are unchanged and only embeds new or changed photos.
A photo that cannot be decoded, or a world with no images folder at all (full-scale synthetic worlds),
never stops the run: those articles take the no-image path (``has_image=False``, zero vector).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl

from hm_recsys.retrieval import tf_env

log = logging.getLogger(__name__)

EMBEDDING_DIM = 2048
# ResNet50 sees each photo as a square of side min(MAX_SIDE, max(MIN_SIDE, its shorter side)): never
# upscaled (a 128 px synthetic photo holds no more at 224 and costs 3x the FLOPs; global average pooling
# makes the 2048-d output size-free), and never so small that the stride-32 network has no spatial cell.
MAX_SIDE = 224
MIN_SIDE = 64
# Rows of every CPU forward (zero-padded), one thread each: the most images per CPU-second at 224 px on one
# thread (measured 1 / 4 / 8 / 16 / 32 rows: bf16 19 / 35 / 34 / 35 / 27, fp32 12 / 15 / 14 / 13 / 12).
CPU_BATCH = 8
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM_INIT = "random-init"
RANDOM_INIT_SEED = 0
WEIGHTS_ENV = "HM_RESNET50_WEIGHTS"
# torchvision's own file names in its hub cache (<torch.hub.get_dir()>/checkpoints/).
_CACHED_WEIGHTS = {
    "imagenet1k_v2": "resnet50-11ad3fa6.pth",
    "imagenet1k_v1": "resnet50-0676ba61.pth",
}
_DOWNLOAD_HOST = "download.pytorch.org"

OUTPUT_SCHEMA = {
    "article_idx": pl.Int32,
    "article_id": pl.String,
    "has_image": pl.Boolean,
    "image_hash": pl.String,
    "weights": pl.String,
    "input_side": pl.Int16,  # the square side ResNet50 saw; with ``weights`` and the hash, what a vector depends on
    "embedder": pl.String,  # how it was computed (``embedder``): another way may differ in the last bits
    "embedding": pl.Array(pl.Float32, EMBEDDING_DIM),
}


def image_path(images_dir: str | os.PathLike, article_id: str) -> Path:
    """Kaggle layout: ``images/{first 3 digits}/{10-digit article_id}.jpg``."""
    return Path(images_dir) / article_id[:3] / f"{article_id}.jpg"


def file_hash(path: str | os.PathLike) -> str:
    """Content hash of an image file (BLAKE2b-128, hex): a changed photo gets a new hash, a touched one not."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _online(host: str = _DOWNLOAD_HOST, timeout: float = 2.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def resolve_weights(weights_path: str | os.PathLike | None = None, allow_download: bool = True) -> tuple[str, dict | None]:
    """Find ImageNet ResNet50 weights: a configured file, torchvision's cache, or a download when online.

    Returns ``(tag, state_dict)``; ``("random-init", None)`` when none can be had. A configured file that is
    missing or unreadable is an error (the user asked for it), not a silent fallback.
    """
    torch = tf_env.torch()
    configured = weights_path or os.environ.get(WEIGHTS_ENV)
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise FileNotFoundError(f"ResNet50 weights file {path} (from weights_path / ${WEIGHTS_ENV}) does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - re-raised with the file named
            raise ValueError(f"cannot load ResNet50 weights from {path}: {exc}") from exc
        return f"file:{path.name}:{file_hash(path)[:12]}", state
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    for tag, name in _CACHED_WEIGHTS.items():
        if (checkpoints / name).is_file():
            return tag, torch.load(checkpoints / name, map_location="cpu", weights_only=True)
    if allow_download and _online():
        from torchvision.models import ResNet50_Weights

        try:
            return "imagenet1k_v2", ResNet50_Weights.IMAGENET1K_V2.get_state_dict(progress=False, check_hash=True)
        except Exception as exc:  # noqa: BLE001 - network trouble falls through to random init, loudly
            log.warning("downloading ResNet50 ImageNet weights failed: %s", exc)
    return RANDOM_INIT, None


def build_model(state_dict: dict | None):
    """ResNet50 with the classifier removed: the output is the 2048-d global-average-pooled feature."""
    torch = tf_env.torch()
    from torchvision.models import resnet50

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        model = resnet50(weights=None)
    if state_dict is not None:
        model.load_state_dict(state_dict)
    model.fc = torch.nn.Identity()
    return model.eval()


def input_side(path: str | os.PathLike, max_side: int = MAX_SIDE) -> int:
    """The side ResNet50 sees this photo at (see MAX_SIDE); from the header only. Unreadable: ``max_side``."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            shorter = min(img.size)
    except Exception:  # noqa: BLE001 - a file that cannot be opened is reported when it is decoded
        return max_side
    return min(max_side, max(MIN_SIDE, shorter))


class _ImageFiles:
    """Map-style dataset of image files -> (normalised 3 x side x side tensor, decoded?) (module level: picklable
    for workers).

    A file that cannot be decoded gives a zero tensor and ``False`` instead of raising, so one bad photo
    among 105k does not stop the run; the caller treats it as a missing image.
    """

    def __init__(self, paths: list[Path], side: int = MAX_SIDE):
        self.paths = paths
        self.side = side

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from PIL import Image

        torch = tf_env.torch()
        path, side = self.paths[i], self.side
        try:
            with Image.open(path) as img:
                img.draft("RGB", (side, side))  # JPEG: decode at a reduced scale >= side, much faster
                img = img.convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
        except Exception as exc:  # noqa: BLE001 - any decoder failure means "no usable image"
            log.warning("cannot decode image file %s (%s: %s): treated as no image", path, type(exc).__name__, exc)
            return torch.zeros(3, side, side), False
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32)
        std = torch.tensor(IMAGENET_STD, dtype=torch.float32)
        return ((x - mean) / std).permute(2, 0, 1).contiguous(), True


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: only then is CPU bf16 a hardware path (elsewhere oneDNN emulates it, slower than fp32)."""
    torch = tf_env.torch()
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def autocast_dtype(device, mixed_precision: bool | None = None):
    """The dtype ResNet50 inference is autocast to, or None for fp32.

    ``mixed_precision=None`` picks the default: on CUDA (tensor cores; bf16 where supported, else fp16)
    and on CPUs with native bf16; off on other CPUs, where ``benchmarks/image_embeddings.py`` measured
    emulated bf16 slower than fp32. ``True`` forces it where the device can run it at all.
    """
    torch = tf_env.torch()
    device = tf_env.torch_device(device)
    if mixed_precision is False:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and (cpu_has_native_bf16() or (mixed_precision and torch.backends.mkldnn.is_available())):
        return torch.bfloat16
    return None


def embedder(device, dtype, batch_size: int) -> str:
    """How ``embed_files`` computes a vector on ``device`` at autocast ``dtype`` (None: fp32): part of reuse.

    The same photo embedded another way (device, precision, CUDA batch shape, kernels of another torch or
    instruction set) may differ in the last bits, so a stored vector is reused only by the embedder that
    would compute it again: incremental equals from scratch byte for byte, at the price of embedding every
    photo again after such a change (e.g. ``cpu/fp32/batch-8-1-thread/AVX512+AMX/torch-2.14.1+cu130``).
    """
    torch = tf_env.torch()
    device = tf_env.torch_device(device)
    precision = "fp32" if dtype is None else str(dtype).removeprefix("torch.")
    if device.type == "cpu":
        shape, hardware = f"batch-{CPU_BATCH}-1-thread", torch.backends.cpu.get_cpu_capability()
        hardware += "+AMX" if torch.cpu._is_amx_tile_supported() else ""  # oneDNN's bf16 kernels differ with it
    else:
        shape = f"batch-{batch_size}"
        hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    return f"{device.type}/{precision}/{shape}/{hardware}/torch-{torch.__version__}"


def embed_files(model, paths: list[Path], batch_size: int = 64, device=None, num_workers: int | None = None,
                mixed_precision: bool | None = None, sides: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Embed image files: ``(embeddings, decoded)``, rows following ``paths``.

    A vector depends on its photo, its side, the weights and the embedder alone, never on which other photos
    are embedded with it or where among them: a photo added later (an incremental run embeds it without
    the others) gets the very bytes a from-scratch run gives it. oneDNN and cuDNN pick kernels by tensor
    shape, and oneDNN's fp32 sums also depend on the thread count (measured: a batch of 1 vs 8, and 1 vs 2
    threads, moved fp32 vectors by ~1e-4), so every forward has one shape and one thread count:

    - CPU: forwards of exactly ``CPU_BATCH`` rows (the rest zero padding), each on one intra-op thread,
      ``num_workers`` such threads side by side (default: torch's thread count); ``batch_size`` is not used.
      At one shape and one thread, a row's bytes did not depend on its position or neighbours (fp32 and
      bf16, sides 64 to 224: ``hm_recsys_tests/test_retrieval_images.py``, ``benchmarks/image_embeddings.py``).
    - CUDA: forwards of exactly ``batch_size`` rows (zero padding) with cuDNN's deterministic algorithms;
      ``num_workers`` DataLoader processes decode (default: up to 8). Not yet checked on a card.

    ``sides[i]`` is the square side file i is resized to (default ``input_side``).
    ``decoded[i]`` is False for a file that could not be decoded; its row is zero.
    """
    torch = tf_env.torch()
    device = tf_env.torch_device(device)
    out = np.zeros((len(paths), EMBEDDING_DIM), dtype=np.float32)
    decoded = np.zeros(len(paths), dtype=bool)
    if not paths:
        return out, decoded
    sides = np.asarray(sides if sides is not None else [input_side(p) for p in paths])
    model = model.to(device, memory_format=torch.channels_last)
    dtype = autocast_dtype(device, mixed_precision)
    if device.type == "cpu":
        _embed_cpu(torch, model, paths, sides, dtype, num_workers or torch.get_num_threads(), out, decoded)
    else:
        _embed_fixed_batches(torch, model, paths, sides, dtype, device, batch_size,
                             min(8, os.cpu_count() or 1) if num_workers is None else num_workers, out, decoded)
    out[~decoded] = 0.0
    return out, decoded


def _embed_cpu(torch, model, paths, sides, dtype, workers: int, out: np.ndarray, decoded: np.ndarray) -> None:
    """CPU: forwards of exactly ``CPU_BATCH`` rows (zero padding), each on one thread; ``workers`` threads
    pull chunks of photos of one side from a queue, decode them and run the forward.

    Threads, not intra-op parallelism: a forward's bytes then do not depend on the thread count, and no op
    waits in an OpenMP barrier for a descheduled thread on a loaded machine. Decoding and the forward
    release the GIL.
    """
    chunks = iter([rows[i : i + CPU_BATCH] for side in np.unique(sides)
                   for rows in [np.flatnonzero(sides == side)] for i in range(0, len(rows), CPU_BATCH)])
    lock = threading.Lock()

    def work() -> None:
        torch.set_num_threads(1)  # this thread's own OpenMP setting (a new thread starts with the default)
        with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            while True:
                with lock:
                    rows = next(chunks, None)
                if rows is None:
                    return
                side = int(sides[rows[0]])
                files = _ImageFiles([paths[i] for i in rows], side)
                batch = torch.zeros(CPU_BATCH, 3, side, side)
                for j in range(len(rows)):
                    batch[j], decoded[rows[j]] = files[j]
                if decoded[rows].any():
                    out[rows] = model(batch.contiguous(memory_format=torch.channels_last))[: len(rows)].float().numpy()

    n_workers = max(1, min(workers, -(-len(paths) // CPU_BATCH)))
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(n_workers) as pool:
            for job in [pool.submit(work) for _ in range(n_workers)]:
                job.result()  # re-raises a worker's exception here
    finally:
        torch.set_num_threads(threads_before)


def _embed_fixed_batches(torch, model, paths, sides, dtype, device, batch_size: int, num_workers: int,
                         out: np.ndarray, decoded: np.ndarray) -> None:
    """CUDA: batches of exactly ``batch_size`` rows (zero padding), cuDNN's deterministic algorithms, no autotuning."""
    cudnn = torch.backends.cudnn
    saved = cudnn.benchmark, cudnn.deterministic  # only these two (cudnn.flags() would reset the TF32 settings too)
    cudnn.benchmark, cudnn.deterministic = False, True
    try:
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            for side in np.unique(sides):
                rows = np.flatnonzero(sides == side)
                loader = torch.utils.data.DataLoader(
                    _ImageFiles([paths[i] for i in rows], int(side)),
                    batch_size=batch_size,
                    shuffle=False,
                    num_workers=num_workers,
                    pin_memory=device.type == "cuda",
                )
                done = 0
                for batch, ok in loader:
                    n = len(batch)
                    if n < batch_size:
                        batch = torch.cat([batch, batch.new_zeros((batch_size - n, *batch.shape[1:]))])
                    batch = batch.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                    out[rows[done : done + n]] = model(batch)[:n].float().cpu().numpy()
                    decoded[rows[done : done + n]] = ok.numpy()
                    done += n
    finally:
        cudnn.benchmark, cudnn.deterministic = saved


def embed_images(
    images_dir: str | os.PathLike,
    articles: pl.DataFrame,
    previous: pl.DataFrame | None = None,
    weights_path: str | os.PathLike | None = None,
    batch_size: int = 64,
    device: str | None = None,
    allow_download: bool = True,
    num_workers: int | None = None,
    mixed_precision: bool | None = None,
    max_side: int = MAX_SIDE,
) -> tuple[pl.DataFrame, dict]:
    """One row per article (``article_idx`` order) with its 2048-d embedding, reusing ``previous`` where valid.

    A previous row is reused when its ``image_hash`` equals the current file's hash and it was computed
    with the same weights, side and ``embedder`` (device, precision, CUDA batch shape); everything else that
    has an image is embedded. A vector does not depend on which photos are embedded with it (``embed_files``),
    so the result equals a from-scratch run's byte for byte. Articles without an image,
    with an image that cannot be decoded, or in a world without an images folder get ``has_image=False``,
    a null hash and a zero vector. ``info`` carries the counts (``n_missing``, ``n_corrupt`` and the
    ``corrupt_images`` article ids, ``images_folder_found``), the speed, the device, the autocast
    ``precision`` and the weights tag (``"random-init"`` when no ImageNet weights could be loaded;
    None when there was nothing to embed or reuse). ``mixed_precision``: see ``autocast_dtype``;
    ``max_side``: see ``MAX_SIDE`` (a vector is reused only when computed at the same side).
    """
    if max_side < MIN_SIDE:
        raise ValueError(f"max_side must be >= {MIN_SIDE} (ResNet50 needs spatial room), got {max_side}")
    for col in ("article_idx", "article_id"):
        if col not in articles.columns:
            raise ValueError(f"articles frame lacks column {col!r} (has {articles.columns})")
    images_dir = Path(images_dir)
    folder_found = images_dir.is_dir()
    if not folder_found:
        log.warning("no images folder %s: every article gets has_image=False and a zero image vector", images_dir)
    t0 = time.perf_counter()
    arts = articles.select("article_idx", "article_id").sort("article_idx")
    ids = arts["article_id"].to_list()
    paths = [image_path(images_dir, a) for a in ids]
    present = np.fromiter((folder_found and p.is_file() for p in paths), dtype=bool, count=len(paths))
    hashes = [file_hash(p) if ok else None for p, ok in zip(paths, present)]
    sides = np.array([input_side(p, max_side) if ok else 0 for p, ok in zip(paths, present)], dtype=np.int16)
    hash_seconds = time.perf_counter() - t0

    # No photo at all: no weights to find (and no network probe), nothing to reuse or embed.
    weights, state_dict = resolve_weights(weights_path, allow_download=allow_download) if present.any() else (None, None)
    device_obj = tf_env.torch_device(device)
    dtype = autocast_dtype(device_obj, mixed_precision)
    how = embedder(device_obj, dtype, batch_size)
    if weights == RANDOM_INIT:
        log.warning(
            "NO IMAGENET WEIGHTS for ResNet50 (no configured file, none in torchvision's cache, no network): "
            "image embeddings come from a RANDOMLY INITIALISED network (seed %d); set $%s to a "
            "resnet50 .pth file to use ImageNet weights",
            RANDOM_INIT_SEED,
            WEIGHTS_ENV,
        )

    embeddings = np.zeros((len(ids), EMBEDDING_DIM), dtype=np.float32)
    reused = np.zeros(len(ids), dtype=bool)
    missing_cols = set(OUTPUT_SCHEMA) - set(previous.columns) if previous is not None else set()
    if missing_cols:  # written by an older version: its vectors cannot be matched, so none is reused
        log.warning("previous image embeddings lack columns %s: every photo is embedded again", sorted(missing_cols))
    if previous is not None and previous.height and not missing_cols:
        prev = (
            previous.filter(pl.col("has_image") & (pl.col("weights") == weights) & (pl.col("embedder") == how))
            .select("article_id", "image_hash", "input_side", pl.int_range(pl.len()).alias("_row"))
        )
        current = pl.DataFrame({"article_id": ids, "image_hash": hashes, "input_side": sides, "_pos": np.arange(len(ids))},
                               schema={"article_id": pl.String, "image_hash": pl.String, "input_side": pl.Int16,
                                       "_pos": pl.Int64})
        match = current.join(prev, on=["article_id", "image_hash", "input_side"], how="inner")
        if match.height:
            prev_emb = previous.filter(pl.col("has_image") & (pl.col("weights") == weights)
                                       & (pl.col("embedder") == how))["embedding"].to_numpy()
            pos = match["_pos"].to_numpy()
            embeddings[pos] = prev_emb[match["_row"].to_numpy()]
            reused[pos] = True

    todo = np.flatnonzero(present & ~reused)
    t1 = time.perf_counter()
    corrupt = np.zeros(0, dtype=np.int64)
    if len(todo):
        model = build_model(state_dict)
        embeddings[todo], decoded = embed_files(model, [paths[i] for i in todo], batch_size, device_obj, num_workers,
                                                mixed_precision, sides=[int(sides[i]) for i in todo])
        corrupt = todo[~decoded]
    embed_seconds = time.perf_counter() - t1
    corrupt_ids = [ids[i] for i in corrupt]
    if corrupt_ids:
        log.warning("%d image file(s) could not be decoded and count as missing: %s%s", len(corrupt_ids),
                    corrupt_ids[:10], " ..." if len(corrupt_ids) > 10 else "")
    has_image = present.copy()
    has_image[corrupt] = False
    hashes = [h if ok else None for h, ok in zip(hashes, has_image)]
    if not np.isfinite(embeddings).all():
        bad = int(np.flatnonzero(~np.isfinite(embeddings).all(axis=1))[0])
        raise ValueError(f"non-finite embedding for article {ids[bad]} (file {paths[bad]})")

    frame = pl.DataFrame(
        {
            "article_idx": arts["article_idx"].cast(pl.Int32),
            "article_id": ids,
            "has_image": has_image,
            "image_hash": hashes,
            "weights": [weights if ok else None for ok in has_image],
            "input_side": [int(side) if ok else None for side, ok in zip(sides, has_image)],
            "embedder": [how if ok else None for ok in has_image],
            "embedding": pl.Series("embedding", embeddings, dtype=OUTPUT_SCHEMA["embedding"]),
        },
        schema=OUTPUT_SCHEMA,
    )
    info = {
        "n_articles": len(ids),
        "n_embedded": int(len(todo) - len(corrupt)),
        "n_reused": int(reused.sum()),
        "n_missing": int((~present).sum()),
        "n_corrupt": len(corrupt_ids),
        "corrupt_images": corrupt_ids,
        "images_folder_found": folder_found,
        "images_per_second": round(len(todo) / embed_seconds, 2) if len(todo) else None,
        "embed_seconds": round(embed_seconds, 3),
        "hash_seconds": round(hash_seconds, 3),
        "device": str(device_obj),
        "precision": "fp32" if dtype is None else str(dtype).removeprefix("torch."),
        "weights": weights,
        "batch_size": batch_size if device_obj.type != "cpu" else CPU_BATCH,
        "embedder": how,
    }
    return frame, info
