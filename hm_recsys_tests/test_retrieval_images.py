"""Image embeddings: shape and flags, incremental reuse (only new / changed photos are embedded), weights fallback,
and a vector independent of the photos embedded with it (incremental equals from scratch, byte for byte)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from hm_recsys.retrieval import image_embeddings as ie


def _write(images_dir, article_id: str, colour) -> None:
    path = ie.image_path(images_dir, article_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.zeros((60, 40, 3), dtype=np.uint8)
    img[:] = colour
    img[10:20] = 255
    Image.fromarray(img).save(path, quality=95)


@pytest.fixture()
def catalogue(tmp_path):
    ids = ["0108775015", "0108775044", "0110065001", "0111565001", "0120129001"]
    for i, a in enumerate(ids[:-1]):  # the last article has no photo
        _write(tmp_path / "images", a, (40 * i, 200 - 30 * i, 90))
    articles = pl.DataFrame({"article_idx": pl.Series(range(len(ids)), dtype=pl.Int32), "article_id": ids})
    return tmp_path / "images", articles


def test_embeddings_frame_and_incremental_reuse(catalogue, caplog, monkeypatch):
    monkeypatch.delenv(ie.WEIGHTS_ENV, raising=False)
    images, articles = catalogue
    with caplog.at_level(logging.WARNING):
        first, info = ie.embed_images(images, articles, batch_size=4, allow_download=False)
    assert info["weights"] == ie.RANDOM_INIT and "RANDOMLY INITIALISED" in caplog.text
    assert (info["n_embedded"], info["n_reused"], info["n_missing"]) == (4, 0, 1)
    assert dict(first.schema) == ie.OUTPUT_SCHEMA
    emb = first["embedding"].to_numpy()
    assert emb.shape == (5, ie.EMBEDDING_DIM) and emb.dtype == np.float32
    assert first["has_image"].to_list() == [True, True, True, True, False]
    assert first["image_hash"][4] is None and not emb[4].any()
    assert all(np.abs(emb[i]).sum() > 0 for i in range(4))
    assert not np.allclose(emb[0], emb[1])  # different photos, different vectors

    # change one photo, add the missing one, add a new article: exactly those three are embedded
    _write(images, "0110065001", (0, 0, 255))
    _write(images, "0120129001", (250, 250, 0))
    _write(images, "0130000001", (10, 10, 10))
    more = pl.concat([articles, pl.DataFrame({"article_idx": pl.Series([5], dtype=pl.Int32), "article_id": ["0130000001"]})])
    second, info2 = ie.embed_images(images, more, previous=first, batch_size=4, allow_download=False)
    assert (info2["n_embedded"], info2["n_reused"], info2["n_missing"]) == (3, 3, 0)
    emb2 = second["embedding"].to_numpy()
    for i in (0, 1, 3):  # unchanged photos: the very same vectors
        np.testing.assert_array_equal(emb2[i], emb[i])
        assert second["image_hash"][i] == first["image_hash"][i]
    assert second["image_hash"][2] != first["image_hash"][2]
    assert not np.allclose(emb2[2], emb[2])
    assert second["has_image"].all()

    # a rerun with nothing new embeds nothing; a fresh run reproduces the reused vectors exactly
    third, info3 = ie.embed_images(images, more, previous=second, allow_download=False)
    assert (info3["n_embedded"], info3["n_reused"]) == (0, 6)
    np.testing.assert_array_equal(third["embedding"].to_numpy(), emb2)


def test_vectors_from_other_weights_or_another_embedder_are_not_reused(catalogue, monkeypatch):
    monkeypatch.delenv(ie.WEIGHTS_ENV, raising=False)
    images, articles = catalogue
    first, info = ie.embed_images(images, articles.head(2), allow_download=False)
    assert first["embedder"].to_list() == [info["embedder"]] * 2 and info["embedder"].startswith("cpu/")
    for relabelled in (first.with_columns(weights=pl.lit("imagenet1k_v2")),
                       first.with_columns(embedder=pl.lit("cuda/bfloat16/batch-256/NVIDIA H100/torch-0")),
                       first.drop("embedder")):  # written before the column existed: computed in batches
        _, info = ie.embed_images(images, articles.head(2), previous=relabelled, allow_download=False)
        assert (info["n_embedded"], info["n_reused"]) == (2, 0)


def _vectors_bytes(model, paths, order, **kw) -> list[bytes]:
    """The bytes of each row when the photos ``paths[i] for i in order`` are embedded in one call."""
    emb, ok = ie.embed_files(model, [paths[i] for i in order], **kw)
    assert ok.all()
    return [row.tobytes() for row in emb]


@pytest.mark.parametrize("mixed_precision", [False, None], ids=["fp32", "default-precision"])
def test_a_vector_does_not_depend_on_the_photos_embedded_with_it(catalogue, mixed_precision, monkeypatch):
    """Incremental equals from scratch: a photo embedded alone (an incremental run's one new photo), among
    others, at other positions of a forward (11 rows: two forwards of CPU_BATCH), with other workers or another
    torch thread count gives the same bytes; and a new article whose photo joins the old ones (``embed_images``
    with ``previous``, as the asset calls it) gets the frame a from-scratch run writes. Before: 1e-4 apart
    in fp32 (oneDNN picks its kernel by batch size, and its sums depend on the thread count)."""
    monkeypatch.delenv(ie.WEIGHTS_ENV, raising=False)
    torch = ie.tf_env.torch()
    images, articles = catalogue
    paths = [ie.image_path(images, a) for a in articles["article_id"][:4]]
    model = ie.build_model(None)
    kw = dict(device="cpu", mixed_precision=mixed_precision)
    alone = [_vectors_bytes(model, paths, [i], **kw)[0] for i in range(4)]
    assert len(set(alone)) == 4  # four photos, four vectors
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)  # the caller's thread count is not the embedder's
        for order, workers in (([0, 1, 2, 3], None), ([3, 2, 1, 0], 1), ([2, 0, 3, 1, 1, 3, 0, 2, 2, 1, 0], 3)):
            assert _vectors_bytes(model, paths, order, num_workers=workers, **kw) == [alone[i] for i in order]
    finally:
        torch.set_num_threads(threads)

    # A new article as the first row (every article_idx shifts) with a copy of an existing photo.
    shutil.copy(paths[1], ie.image_path(images, "0100000001"))
    before, _ = ie.embed_images(images, articles, allow_download=False, **kw)
    grown = pl.DataFrame({"article_idx": pl.Series(range(articles.height + 1), dtype=pl.Int32),
                          "article_id": ["0100000001", *articles["article_id"]]})
    incremental, info = ie.embed_images(images, grown, previous=before, allow_download=False, **kw)
    scratch, info_scratch = ie.embed_images(images, grown, allow_download=False, **kw)
    assert (info["n_embedded"], info["n_reused"], info_scratch["n_embedded"]) == (1, 4, 5)
    assert incremental.equals(scratch)
    assert incremental["embedding"].to_numpy().tobytes() == scratch["embedding"].to_numpy().tobytes()
    emb = scratch["embedding"].to_numpy()
    assert emb[0].tobytes() == emb[2].tobytes() == alone[1]  # the copy and its original: one vector


def test_vectors_are_the_same_in_another_process_with_other_threads(catalogue, tmp_path, monkeypatch):
    """Two processes (the incremental and the from-scratch run) with other torch thread counts: same bytes."""
    monkeypatch.delenv(ie.WEIGHTS_ENV, raising=False)
    images, articles = catalogue
    paths = [str(ie.image_path(images, a)) for a in articles["article_id"][:4]]
    script = (
        "import sys, numpy as np, torch\n"
        "from hm_recsys.retrieval import image_embeddings as ie\n"
        "torch.set_num_threads(int(sys.argv[1]))\n"
        "emb, ok = ie.embed_files(ie.build_model(None), sys.argv[3:], device='cpu', mixed_precision=False)\n"
        "np.save(sys.argv[2], emb)\n"
    )
    got = []
    for threads, order in ((1, [0, 1, 2, 3]), (3, [3, 1])):
        out = tmp_path / f"{threads}.npy"
        subprocess.run([sys.executable, "-c", script, str(threads), str(out), *[paths[i] for i in order]], check=True,
                       env={**os.environ, "OMP_NUM_THREADS": str(threads)}, cwd=Path(__file__).parents[1], timeout=600)
        got.append(dict(zip(order, np.load(out))))
    here, _ = ie.embed_files(ie.build_model(None), [paths[3]], device="cpu", mixed_precision=False)
    assert got[0][3].tobytes() == got[1][3].tobytes() == here[0].tobytes()
    assert got[0][1].tobytes() == got[1][1].tobytes()


@pytest.mark.skipif(not ie.tf_env.torch().cuda.is_available(), reason="no CUDA device")
def test_a_vector_does_not_depend_on_its_batch_on_cuda(catalogue):
    """CUDA: every forward has batch_size rows (zero padding), so position and neighbours do not matter."""
    images, articles = catalogue
    paths = [ie.image_path(images, a) for a in articles["article_id"][:4]]
    model = ie.build_model(None)
    kw = dict(device="cuda", batch_size=4)
    alone = [_vectors_bytes(model, paths, [i], **kw)[0] for i in range(4)]
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1, 1, 3, 0, 2, 2, 1, 0]):
        assert _vectors_bytes(model, paths, order, **kw) == [alone[i] for i in order]


def test_configured_weights_file_must_exist(catalogue, tmp_path):
    images, articles = catalogue
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        ie.embed_images(images, articles, weights_path=tmp_path / "nope.pth")


def test_corrupt_images_are_skipped_like_missing_ones(catalogue, caplog, monkeypatch):
    monkeypatch.delenv(ie.WEIGHTS_ENV, raising=False)
    images, articles = catalogue
    damaged = {"0108775044": lambda b: b"not a jpeg", "0110065001": lambda b: b[: len(b) // 2], "0111565001": lambda b: b""}
    for article_id, damage in damaged.items():
        path = ie.image_path(images, article_id)
        path.write_bytes(damage(path.read_bytes()))
    with caplog.at_level(logging.WARNING):
        frame, info = ie.embed_images(images, articles, batch_size=2, allow_download=False)
    assert all(f"{a}.jpg" in caplog.text for a in damaged) and "could not be decoded" in caplog.text
    assert (info["n_embedded"], info["n_corrupt"], info["n_missing"]) == (1, 3, 1)
    assert info["corrupt_images"] == list(damaged)
    assert dict(frame.schema) == ie.OUTPUT_SCHEMA
    assert frame["has_image"].to_list() == [True, False, False, False, False]
    assert frame["image_hash"].null_count() == 4 and frame["weights"].null_count() == 4
    emb = frame["embedding"].to_numpy()
    assert np.abs(emb[0]).sum() > 0 and not emb[1:].any()

    # Repaired later: embedded then, while the good photo is reused.
    _write(images, "0108775044", (10, 200, 90))
    again, info2 = ie.embed_images(images, articles, previous=frame, allow_download=False)
    assert (info2["n_embedded"], info2["n_reused"], info2["n_corrupt"]) == (1, 1, 2)
    assert again["has_image"].to_list() == [True, True, False, False, False]


def test_world_without_images_folder_gives_no_image_rows(tmp_path, caplog):
    """Full-scale worlds are generated without images: every article takes the no-image path."""
    articles = pl.DataFrame({"article_idx": pl.Series([1, 0], dtype=pl.Int32), "article_id": ["0108775044", "0108775015"]})
    with caplog.at_level(logging.WARNING):
        frame, info = ie.embed_images(tmp_path / "nowhere", articles, allow_download=True)
    assert "no images folder" in caplog.text and "nowhere" in caplog.text
    assert dict(frame.schema) == ie.OUTPUT_SCHEMA
    assert frame["article_idx"].to_list() == [0, 1] and frame["article_id"].to_list() == ["0108775015", "0108775044"]
    assert not frame["has_image"].any() and frame["image_hash"].null_count() == 2
    assert not frame["embedding"].to_numpy().any()
    assert (info["images_folder_found"], info["n_missing"], info["n_embedded"], info["weights"]) == (False, 2, 0, None)


def test_mixed_precision_default_and_closeness(catalogue, monkeypatch):
    torch = ie.tf_env.torch()
    monkeypatch.delenv(ie.WEIGHTS_ENV, raising=False)
    assert ie.autocast_dtype("cpu", False) is None
    assert (ie.autocast_dtype("cpu") is torch.bfloat16) == ie.cpu_has_native_bf16()  # off where bf16 is emulated
    if not torch.backends.mkldnn.is_available():
        pytest.skip("no oneDNN: CPU bf16 autocast unavailable")
    images, articles = catalogue
    fp32, info32 = ie.embed_images(images, articles, allow_download=False, mixed_precision=False)
    bf16, info16 = ie.embed_images(images, articles, allow_download=False, mixed_precision=True)
    assert (info32["precision"], info16["precision"]) == ("fp32", "bfloat16")
    a, b = fp32["embedding"].to_numpy()[:4], bf16["embedding"].to_numpy()[:4]
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.99 and not np.array_equal(a, b)


def test_photos_are_never_upscaled_and_the_side_is_part_of_reuse(tmp_path, monkeypatch):
    """A 128 px photo is seen at 128 (not upscaled to 224, 3x the FLOPs); a smaller max_side re-embeds it."""
    monkeypatch.delenv(ie.WEIGHTS_ENV, raising=False)
    rng = np.random.default_rng(0)
    sizes = {"0108775015": (128, 128), "0108775044": (300, 400), "0110065001": (20, 30)}
    for article_id, (w, h) in sizes.items():
        path = ie.image_path(tmp_path, article_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path, quality=95)
    articles = pl.DataFrame({"article_idx": pl.Series(range(3), dtype=pl.Int32), "article_id": list(sizes)})
    first, _ = ie.embed_images(tmp_path, articles, allow_download=False)
    assert first["input_side"].to_list() == [128, 224, ie.MIN_SIDE]
    # The same photo at its own size and the file's vector agree: batching by side keeps rows in place.
    model = ie.build_model(None)
    alone, ok = ie.embed_files(model, [ie.image_path(tmp_path, "0108775015")])
    assert ok.all()
    assert alone[0].tobytes() == first["embedding"].to_numpy()[0].tobytes()

    second, info = ie.embed_images(tmp_path, articles, previous=first, allow_download=False, max_side=128)
    assert second["input_side"].to_list() == [128, 128, ie.MIN_SIDE]
    assert (info["n_reused"], info["n_embedded"]) == (2, 1)  # only the photo larger than 128 is embedded again
    with pytest.raises(ValueError, match="max_side"):
        ie.embed_images(tmp_path, articles, allow_download=False, max_side=32)


def test_embeddings_from_an_older_layout_are_embedded_again(catalogue, caplog, monkeypatch):
    monkeypatch.delenv(ie.WEIGHTS_ENV, raising=False)
    images, articles = catalogue
    first, _ = ie.embed_images(images, articles, allow_download=False)
    with caplog.at_level(logging.WARNING):
        _, info = ie.embed_images(images, articles, previous=first.drop("input_side"), allow_download=False)
    assert (info["n_reused"], info["n_embedded"]) == (0, 4) and "input_side" in caplog.text
