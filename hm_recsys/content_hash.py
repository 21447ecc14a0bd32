"""Content hashes of tables that stay the same across library versions.

``polars.DataFrame.hash_rows`` (and ``Series.hash``) is documented as not stable across polars versions:
a data version or content key built on it would change with an upgrade although no row did (every
dependant rebuilt for nothing), or, worse, two versions could disagree about whether a cached artifact
is the right one. Here every byte fed to the hash is one this module lays out itself: the column names,
a dtype tag of our own (not polars' repr), the row count, then per column its null mask and its values
as fixed-width little-endian numbers (dates as days since 1970-01-01, datetimes as integers of their
time unit, booleans as one byte) or, for strings (categoricals as their strings), the UTF-8 byte
length of every value followed by all values' bytes. The same rows in the same order give the same
digest whichever polars, pyarrow or numpy produced them; changing the layout means bumping ``FORMAT``.
"""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl

FORMAT = b"hm_recsys.content_hash/1"

# polars dtype -> (our tag, numpy dtype of the values as hashed)
_NUMERIC = {
    pl.Int8: ("int8", "<i1"), pl.Int16: ("int16", "<i2"), pl.Int32: ("int32", "<i4"), pl.Int64: ("int64", "<i8"),
    pl.UInt8: ("uint8", "<u1"), pl.UInt16: ("uint16", "<u2"), pl.UInt32: ("uint32", "<u4"), pl.UInt64: ("uint64", "<u8"),
    pl.Float32: ("float32", "<f4"), pl.Float64: ("float64", "<f8"),
}


def _fixed(values: pl.Series, numpy_dtype: str) -> bytes:
    return np.ascontiguousarray(values.to_numpy(), dtype=numpy_dtype).tobytes()


def _utf8(text: pl.Series) -> list:
    """Every value's UTF-8 byte length (u64), then all the bytes: read from Arrow's large_string layout
    (a fixed spec: int64 offsets + one data buffer), whatever layout polars keeps the strings in."""
    import pyarrow as pa

    arr = text.to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_string())
    if len(arr) == 0:
        return [b"", b""]
    _, offsets_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offsets_buf, dtype="<i8")[arr.offset:arr.offset + len(arr) + 1]
    data = b"" if data_buf is None else memoryview(data_buf)[int(offsets[0]):int(offsets[-1])]
    return [np.diff(offsets).astype("<u8").tobytes(), data]


def _column(series: pl.Series) -> tuple[str, list[bytes]]:
    """(tag, byte strings) of one column, nulls excluded (they are in the mask)."""
    dtype = series.dtype
    for known, (tag, np_dtype) in _NUMERIC.items():
        if dtype == known:
            return tag, [_fixed(series.fill_null(0), np_dtype)]
    if dtype == pl.Boolean:
        return "bool", [_fixed(series.fill_null(False), "u1")]
    if dtype == pl.Date:
        return "date_days", [_fixed(series.cast(pl.Int32).fill_null(0), "<i4")]
    if isinstance(dtype, pl.Datetime):
        return f"datetime_{dtype.time_unit}_{dtype.time_zone or ''}", [_fixed(series.cast(pl.Int64).fill_null(0), "<i8")]
    if isinstance(dtype, pl.Duration):
        return f"duration_{dtype.time_unit}", [_fixed(series.cast(pl.Int64).fill_null(0), "<i8")]
    if dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum)):
        return "utf8", _utf8(series.cast(pl.String).fill_null(""))
    raise TypeError(f"content_hash: column {series.name!r} has dtype {dtype}, which has no stable layout here")


def update(h, frame: pl.DataFrame) -> None:
    """Feed ``frame`` (schema, row count, every value in row order) into the hashlib object ``h``."""
    h.update(FORMAT)
    h.update(len(frame.columns).to_bytes(8, "little"))
    h.update(frame.height.to_bytes(8, "little"))
    for name in frame.columns:
        series = frame.get_column(name)
        tag, parts = _column(series)
        for token in (name.encode("utf-8"), tag.encode()):
            h.update(len(token).to_bytes(8, "little"))
            h.update(token)
        nulls = series.null_count()
        h.update(nulls.to_bytes(8, "little"))
        if nulls:
            h.update(np.packbits(series.is_null().to_numpy(), bitorder="little").tobytes())
        for part in parts:
            h.update(len(part).to_bytes(8, "little"))
            h.update(part)


def digest(frame: pl.DataFrame, digest_size: int = 16) -> str:
    """Hex blake2b of ``update(frame)``."""
    h = hashlib.blake2b(digest_size=digest_size)
    update(h, frame)
    return h.hexdigest()
