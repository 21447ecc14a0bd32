"""Content hashes (history's data version, the TFRecord shard keys) are laid out byte by byte by us, so a
library upgrade cannot change them: the digest of a fixed frame is pinned here."""

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from hm_recsys import content_hash

PINNED = "db60776a57847462e12efadb00cff8e1"  # changes only with content_hash.FORMAT


def frame() -> pl.DataFrame:
    return pl.DataFrame({
        "t_dat": [dt.date(2020, 9, 1), dt.date(2020, 9, 2), None],
        "customer_idx": pl.Series([3, 1, 2], dtype=pl.Int32),
        "price": pl.Series([0.5, None, 0.25], dtype=pl.Float32),
        "id": ["a", None, "ç"],
        "cat": pl.Series(["x", "y", "x"], dtype=pl.Categorical),
        "b": [True, False, None],
    })


def test_digest_of_a_fixed_frame_is_pinned():
    assert content_hash.digest(frame()) == PINNED


def test_digest_is_the_documented_layout():
    """Rebuild the bytes from plain Python values (no polars hashing, no Arrow): the same digest."""
    f = frame()
    h = hashlib.blake2b(digest_size=16)

    def token(b: bytes):
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)

    h.update(content_hash.FORMAT)
    h.update(len(f.columns).to_bytes(8, "little"))
    h.update(f.height.to_bytes(8, "little"))
    layout = {"t_dat": ("date_days", "<i4"), "customer_idx": ("int32", "<i4"), "price": ("float32", "<f4"),
              "id": ("utf8", None), "cat": ("utf8", None), "b": ("bool", "u1")}
    for name, (tag, np_dtype) in layout.items():
        values = f[name].to_list()
        token(name.encode())
        token(tag.encode())
        nulls = [v is None for v in values]
        h.update(sum(nulls).to_bytes(8, "little"))
        if any(nulls):
            h.update(np.packbits(np.array(nulls), bitorder="little").tobytes())
        if tag == "date_days":
            values = [0 if v is None else (v - dt.date(1970, 1, 1)).days for v in values]
        if np_dtype:
            token(np.array([0 if v is None else v for v in values], dtype=np_dtype).tobytes())
        else:
            texts = [(v or "").encode() for v in values]
            token(np.array([len(t) for t in texts], dtype="<u8").tobytes())
            token(b"".join(texts))
    assert h.hexdigest() == content_hash.digest(frame())


def test_digest_follows_content_not_chunks():
    f = frame()
    chunked = pl.concat([f.head(1), f.tail(2)], rechunk=False)
    assert chunked["id"].n_chunks() == 2
    assert content_hash.digest(chunked) == content_hash.digest(f)
    assert content_hash.digest(f.slice(1, 2)) == content_hash.digest(pl.DataFrame(f.slice(1, 2).to_dicts(), schema=f.schema))
    changed = f.with_columns(customer_idx=pl.Series([3, 7, 2], dtype=pl.Int32))
    assert content_hash.digest(changed) != content_hash.digest(f)
    assert content_hash.digest(f.reverse()) != content_hash.digest(f)  # row order is content
    assert content_hash.digest(f.with_columns(pl.col("customer_idx").cast(pl.Int64))) != content_hash.digest(f)  # so is the dtype
    assert content_hash.digest(f.rename({"id": "jd"})) != content_hash.digest(f)


def test_unsupported_dtype_is_refused():
    with pytest.raises(TypeError, match="no stable layout"):
        content_hash.digest(pl.DataFrame({"l": [[1, 2]]}))


def test_no_version_dependent_row_hash_in_the_package():
    """polars documents hash_rows / Series.hash as unstable across versions: nothing persisted may use them."""
    root = Path(content_hash.__file__).parent
    users = [str(p.relative_to(root)) for p in root.rglob("*.py") if "hash_rows(" in p.read_text()]
    assert users == []
