"""Image embeddings: shape and flags, incremental reuse (only new / changed photos are embedded), weights fallback."""

from __future__ import annotations

import logging

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


def test_vectors_from_other_weights_are_not_reused(catalogue, monkeypatch):
    monkeypatch.delenv(ie.WEIGHTS_ENV, raising=False)
    images, articles = catalogue
    first, _ = ie.embed_images(images, articles.head(2), allow_download=False)
    relabelled = first.with_columns(weights=pl.lit("imagenet1k_v2"))
    _, info = ie.embed_images(images, articles.head(2), previous=relabelled, allow_download=False)
    assert (info["n_embedded"], info["n_reused"]) == (2, 0)


def test_configured_weights_file_must_exist(catalogue, tmp_path):
    images, articles = catalogue
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        ie.embed_images(images, articles, weights_path=tmp_path / "nope.pth")


def test_corrupt_image_is_named(catalogue):
    images, articles = catalogue
    bad = ie.image_path(images, "0108775044")
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="0108775044.jpg"):
        ie.embed_images(images, articles, allow_download=False)


def test_missing_folder_is_named(tmp_path):
    articles = pl.DataFrame({"article_idx": pl.Series([0], dtype=pl.Int32), "article_id": ["0108775015"]})
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ie.embed_images(tmp_path / "nowhere", articles)
