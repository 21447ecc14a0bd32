"""Serving snapshots: a week's recommendations in a form a server loads in a second and never mutates.

A snapshot is a folder of NumPy arrays plus a manifest, named by the content hash of all of it::

    <data>/serving/current                      "<week>/<version>"  (replaced in one step: os.replace)
    <data>/serving/<week>/<version>/
        manifest.json         week, version, sizes, age edges, fallback labels, what it was built from
        customer_ids.npy      S64, sorted: np.searchsorted finds a customer id in ~12 us at 1.37M customers
        customer_rows.npy     int32: the dense row (customer_idx) of each sorted id
        recommendations.npy   int32 [n_customers, 12]: positions in article_ids, row = customer_idx, in order
        article_ids.npy       S10: the article id at each position (= article_idx)
        fallback.npy          int32 [1 + age groups, 12]: overall popular, then each age group's popular

Arrays are memory-mapped: a load maps files instead of building Python objects (a dict of 1.37M ids
takes ~10 s and ~210 MiB to build; the sorted array costs nothing to load), and the pages are the page
cache's, shared by every worker on the host. A switch is bounded by hashing the 153 MiB (BLAKE2b, ~1 GB/s
on one core) once when publishing and once when loading; everything else is vectorised and overlapped
with the hash (``Published.seconds`` and ``Snapshot.load_phases`` record where the time went):

- ``publish`` checks the content (the same checks ``load_snapshot`` makes), hashes the arrays in memory and
  writes them (header, then the array's own buffer: no copy) at the same time, on threads (hashing, NumPy
  and file writes release the GIL), then names the folder by the hash.
- ``load_snapshot`` maps each file once and hashes the mapped bytes (no read copies) while it checks the
  arrays made over those same mappings; the hash is judged first, so a corrupt file is reported as such.

At 1.37M customers on a shared 2-core machine (``benchmarks/serving.py``): publish ~0.3-0.4 s, load
~0.3 s, publish start to the server answering from the new snapshot ~0.6-0.9 s (it polls every 0.2 s).

A version folder is published with ``io.create_once`` (same version => same bytes) and only then named by
``current``; versions the pointer moved away from are deleted (a server that mapped them keeps its
mapping). ``publish`` refuses content that breaks an invariant before anything is published, and
``load_snapshot`` still checks every invariant itself (a folder written by other means, or by an older
writer, gets no trust from its hash alone): it refuses a folder whose manifest, hash, shapes or rows are
wrong (``SnapshotError`` with the reason), so a corrupt or hand-copied half snapshot never serves.
"""

from __future__ import annotations

import ast
import hashlib
import io as _bytes_io
import json
import mmap
import os
import shutil
import struct
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.lib import format as npy

FORMAT = 1
K = 12
POINTER = "current"
MANIFEST = "manifest.json"
FILES = ("customer_ids.npy", "customer_rows.npy", "recommendations.npy", "article_ids.npy", "fallback.npy")
OVERALL = "overall"


class SnapshotError(ValueError):
    """A snapshot that must not be served: the message says why."""


def serving_root(data_root: str | os.PathLike) -> Path:
    """Where a data folder's snapshots live: ``<data>/serving``."""
    return Path(data_root) / "serving"


# ---------------------------------------------------------------------------------------------- age groups


def age_group_labels(edges: tuple[int, ...]) -> list[str]:
    """Labels of the groups ``candidates.popular.age_group`` forms: ``<20``, ``20-22``, ..., ``70+``."""
    inner = list(edges[1:])
    labels = [f"<{inner[0]}"] if inner else ["all ages"]
    labels += [f"{lo}-{hi - 1}" for lo, hi in zip(inner, inner[1:])]
    if inner:
        labels.append(f"{inner[-1]}+")
    return labels


def age_group_of(age: float, edges: tuple[int, ...]) -> int:
    """The same grouping as ``candidates.popular.age_group`` for one known age."""
    return sum(age >= e for e in edges[1:])


# ---------------------------------------------------------------------------------------------- building


@dataclass(frozen=True)
class SnapshotContent:
    """What a snapshot holds, before it is written: arrays by file name and the manifest's content fields."""

    week: str
    arrays: dict[str, np.ndarray]
    info: dict


def _npy_parts(a: np.ndarray) -> tuple[bytes, memoryview]:
    """A C-contiguous array's ``.npy`` file as (header, body): the bytes ``np.save`` writes (format 1.0, the
    one it picks for these arrays), the body a view of the array's own memory rather than a copy."""
    header = _bytes_io.BytesIO()
    npy.write_array_header_1_0(header, npy.header_data_from_array_1_0(a))
    return header.getvalue(), memoryview(a.reshape(-1).view(np.uint8))


def _content_hash(info: dict, blobs) -> str:
    """BLAKE2b-128 over the manifest's content fields (canonical JSON) and every file's name and bytes
    (``blobs``: (name, chunks) pairs, a chunk being anything with the buffer protocol)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(info, sort_keys=True, separators=(",", ":")).encode())
    for name, chunks in blobs:
        h.update(name.encode() + b"\0")
        for chunk in chunks:
            h.update(chunk)
    return h.hexdigest()


def file_hash(path: str | os.PathLike) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def fallback_lists(tables, week_key: str, *, edges: tuple[int, ...] | None = None, days: int = 7) -> tuple[list[list[int]], list[str]]:
    """Point-in-time fallbacks for a customer the week's recommendations do not know (article_idx lists of 12):
    first the overall popular list (``baselines.popular_articles``: the same list ``final`` is filled with),
    then each age group's best sellers of the last ``days`` days (the ``age_popular`` candidate source's
    ranking), topped up from the overall list. Returns the lists and their labels."""
    import polars as pl

    from hm_recsys.baselines import popular_articles
    from hm_recsys.candidates.contract import past
    from hm_recsys.candidates.popular import AGE_EDGES, _top_articles, customer_age_groups
    from hm_recsys.weeks import TargetWeek

    edges = AGE_EDGES if edges is None else tuple(edges)
    week = TargetWeek.from_key(week_key)
    overall = list(dict.fromkeys(popular_articles(tables, week)))
    if len(overall) < K:
        raise SnapshotError(f"week {week_key}: only {len(overall)} articles were ever bought before it; a fallback needs {K}")
    tx = past(tables, week, days).join(customer_age_groups(tables, edges).lazy(), on="customer_idx", how="inner")
    ranking = _top_articles(tx, K, by=["age_group"])
    labels = age_group_labels(edges)
    lists = [overall[:K]]
    for group in range(len(labels)):
        own = ranking.filter(pl.col("age_group") == group).sort("rank")["article_idx"].to_list()
        lists.append(list(dict.fromkeys([*own, *overall]))[:K])
    return lists, [OVERALL, *labels]


def build_snapshot(final_csv: str | os.PathLike, tables, week_key: str, *, edges: tuple[int, ...] | None = None,
                   days: int = 7) -> SnapshotContent:
    """A week's snapshot from its ``final.csv`` (read back and validated as Kaggle would: every customer once,
    12 distinct known articles) and the fallbacks of ``fallback_lists``."""
    from hm_recsys.candidates.popular import AGE_EDGES
    from hm_recsys.submission import read_submission

    edges = AGE_EDGES if edges is None else tuple(edges)
    long = read_submission(final_csv, tables).sort("customer_idx", "rank")
    n = tables.n_customers
    recs = long["article_idx"].to_numpy().astype(np.int32, copy=False).reshape(n, K)
    if not np.array_equal(long["customer_idx"].to_numpy()[::K], np.arange(n)):
        raise SnapshotError(f"{final_csv}: the rows do not cover customer_idx 0..{n - 1} once each")
    ids = tables.customers.sort("customer_idx")["customer_id"].to_numpy().astype("S")
    order = np.argsort(ids, kind="stable").astype(np.int32)
    articles = tables.articles.sort("article_idx")["article_id"].to_numpy().astype("S")
    lists, labels = fallback_lists(tables, week_key, edges=edges, days=days)
    arrays = {
        "customer_ids.npy": ids[order],
        "customer_rows.npy": order,
        "recommendations.npy": np.ascontiguousarray(recs),
        "article_ids.npy": articles,
        "fallback.npy": np.asarray(lists, dtype=np.int32),
    }
    info = {"format": FORMAT, "week": week_key, "k": K, "n_customers": int(n), "n_articles": int(len(articles)),
            "age_edges": list(edges), "fallback_groups": labels,
            "built_from": {"final_csv": f"submissions/{week_key}/{Path(final_csv).name}",
                           "final_csv_blake2b": file_hash(final_csv), "fallback_days": days}}
    return SnapshotContent(week_key, arrays, info)


@dataclass(frozen=True)
class Published:
    path: Path
    week: str
    version: str
    current: bool  # whether ``current`` names it (an older week than the current one is kept but not served)
    size_bytes: int
    seconds: dict[str, float] = field(default_factory=dict)  # where publish's time went, by phase


def read_pointer(root: str | os.PathLike) -> str | None:
    """``<week>/<version>`` named by ``root/current``, or None when there is none yet."""
    try:
        text = (Path(root) / POINTER).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return text or None


def _discard(path: Path) -> None:
    """Remove a folder so that it disappears in one step (renamed aside first, then deleted)."""
    aside = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def _write_files(folder: Path, parts: dict[str, tuple[bytes, memoryview]]) -> None:
    folder.mkdir()
    for name in FILES:
        with open(folder / name, "wb") as fh:
            for chunk in parts[name]:
                fh.write(chunk)  # a large buffer goes straight to the file, uncopied


def _write_snapshot(root: Path, content: SnapshotContent, *, check: bool = True) -> tuple[Path, str, int, dict]:
    """Write ``content`` once as ``root/<week>/<version>`` (``io.create_once``), checked as by
    ``check_content`` unless ``check`` is False (tests: what a buggy or foreign writer would leave).
    Shapes and types are checked first; then the invariants, the hash and the writing of the arrays run at
    the same time: the files go to a staging folder, which becomes the version folder (its manifest written
    last) only once the hash names it and the check passed. Returns the folder, the version, the bytes
    written and the seconds by phase (``hash``, ``check``, ``write``: each on its own, at the same time;
    ``written``: until the folder stood under its version)."""
    from hm_recsys import io

    t0 = time.perf_counter()
    seconds = {}

    def timed(name, fn, *args):
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            seconds[name] = round(time.perf_counter() - start, 4)

    where = _check_content_shapes(content) if check else ""
    arrays = {name: np.ascontiguousarray(content.arrays[name]) for name in FILES}
    parts = {name: _npy_parts(arrays[name]) for name in FILES}
    week_dir = root / content.week
    week_dir.mkdir(parents=True, exist_ok=True)
    staging = week_dir / f".staging.{uuid.uuid4().hex[:12]}.tmp"  # io.collect_garbage sweeps a killed writer's
    try:
        with ThreadPoolExecutor(2, thread_name_prefix="snapshot-publish") as pool:
            digest = pool.submit(timed, "hash", _content_hash, content.info, [(name, parts[name]) for name in FILES])
            checked = pool.submit(timed, "check", _check_arrays, where, arrays, content.info) if check else None
            timed("write", _write_files, staging, parts)
            version = digest.result()
            if checked is not None:
                checked.result()
        target = week_dir / version
        with io.create_once(target) as tmp:
            os.rename(staging, tmp)
            (tmp / MANIFEST).write_text(json.dumps({**content.info, "version": version}, indent=2, sort_keys=True) + "\n")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    seconds["written"] = round(time.perf_counter() - t0, 4)
    return target, version, sum(len(h) + b.nbytes for h, b in parts.values()), seconds


def publish(root: str | os.PathLike, content: SnapshotContent) -> Published:
    """Check the content (``check_content``: what ``load_snapshot`` would refuse is refused here, and
    nothing is published), write the snapshot once under ``root/<week>/<version>/``, then point ``current``
    at it unless a newer week is current; the versions ``current`` moved away from (this week's others,
    older weeks) are deleted. ``Published.seconds``: the phases of ``_write_snapshot``, then ``pointer``
    (until ``current`` named it) and ``total`` (the old versions deleted too)."""
    from hm_recsys import io

    t0 = time.perf_counter()
    root = Path(root)
    target, version, size, seconds = _write_snapshot(root, content)
    pointer = f"{content.week}/{version}"
    now = read_pointer(root)
    is_current = now is None or now.split("/")[0] <= content.week
    if is_current and now != pointer:
        with io.atomic_path(root / POINTER) as tmp:
            tmp.write_text(pointer + "\n")
    seconds["pointer"] = round(time.perf_counter() - t0, 4)  # published: what follows only tidies up
    if is_current:
        for folder in root.iterdir():
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            if folder.name < content.week:
                _discard(folder)
            elif folder.name == content.week:
                for old in folder.iterdir():
                    if old.name != version and not old.name.startswith("."):
                        _discard(old)
    seconds["total"] = round(time.perf_counter() - t0, 4)
    return Published(target, content.week, version, is_current, size, seconds)


# ---------------------------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class Recommendation:
    articles: list[str]
    source: str  # "personal" (the week's final.csv) or "fallback"
    fallback: str | None  # which list: "overall" or an age group's label
    week: str
    version: str


@dataclass(frozen=True, eq=False)
class Snapshot:
    """One loaded, validated snapshot: never changes after ``load_snapshot`` returns it."""

    path: Path
    manifest: dict
    customer_ids: np.ndarray
    customer_rows: np.ndarray
    recommendations: np.ndarray
    article_ids: tuple[str, ...]
    fallback: tuple[tuple[str, ...], ...]
    loaded_at: float = field(default_factory=time.time)
    load_seconds: float = 0.0
    load_phases: dict[str, float] = field(default_factory=dict)  # where load_snapshot's time went

    @property
    def week(self) -> str:
        return self.manifest["week"]

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def n_customers(self) -> int:
        return int(self.manifest["n_customers"])

    def row(self, customer_id: str) -> int | None:
        """The customer's dense row, or None for an id the week does not know."""
        try:
            key = customer_id.encode("ascii")
        except UnicodeEncodeError:
            return None
        ids = self.customer_ids
        if not key or len(key) > ids.dtype.itemsize:
            return None
        i = int(np.searchsorted(ids, key))
        if i < len(ids) and ids[i] == key:
            return int(self.customer_rows[i])
        return None

    def fallback_for(self, age: float | None = None) -> tuple[str, tuple[str, ...]]:
        labels = self.manifest["fallback_groups"]
        if age is None:
            return labels[0], self.fallback[0]
        g = 1 + age_group_of(age, tuple(self.manifest["age_edges"]))
        return labels[g], self.fallback[g]

    def recommend(self, customer_id: str, n: int = K, age: float | None = None) -> Recommendation:
        """The customer's first ``n`` articles in order; an unknown customer gets the fallback of the given
        age's group (overall popular without an age), marked as such."""
        row = self.row(customer_id)
        if row is not None:
            arts = self.article_ids
            return Recommendation([arts[a] for a in self.recommendations[row, :n].tolist()], "personal", None,
                                  self.week, self.version)
        label, items = self.fallback_for(age)
        return Recommendation(list(items[:n]), "fallback", label, self.week, self.version)


# ---------------------------------------------------------------------------------------------- checks
# One set of checks, made by ``publish`` before it writes and by ``load_snapshot`` on what it mapped.


def _check_info(where: str, info: dict) -> tuple[int, int, list]:
    """The manifest's content fields: present and of this format. Returns (customers, articles, labels)."""
    try:
        week, k, n, n_art = (info[f] for f in ("week", "k", "n_customers", "n_articles"))
        labels, edges = info["fallback_groups"], info["age_edges"]
    except (KeyError, TypeError) as e:
        raise SnapshotError(f"{where}/{MANIFEST}: missing field {e}") from None
    if info.get("format") != FORMAT:
        raise SnapshotError(f"{where}: format {info.get('format')!r}, this server reads format {FORMAT}")
    try:
        groups, n_labels = len(age_group_labels(tuple(int(e) for e in edges))) + 1, len(labels)
    except (TypeError, ValueError):
        raise SnapshotError(f"{where}/{MANIFEST}: age_edges {edges!r} or fallback_groups {labels!r} malformed") from None
    if k != K or n_labels != groups:
        raise SnapshotError(f"{where}: k={k} or {n_labels} fallback lists do not match the format")
    if not isinstance(week, str) or not isinstance(n, int) or not isinstance(n_art, int) or n < 0 or n_art < 0:
        raise SnapshotError(f"{where}/{MANIFEST}: week {week!r}, n_customers {n!r}, n_articles {n_art!r}")
    return n, n_art, labels


def _check_shapes(where: str, arrays: dict[str, np.ndarray], info: dict) -> None:
    """Every array of its type and shape, and not a Python object array."""
    n, n_art, labels = _check_info(where, info)
    expect = {"customer_ids.npy": ("S", (n,)), "customer_rows.npy": ("i", (n,)), "recommendations.npy": ("i", (n, K)),
              "article_ids.npy": ("S", (n_art,)), "fallback.npy": ("i", (len(labels), K))}
    for f, (kind, shape) in expect.items():
        a = arrays[f]
        dtype_ok = a.dtype.kind == "S" if kind == "S" else a.dtype == np.int32
        if not dtype_ok or a.shape != shape:
            raise SnapshotError(f"{where}/{f}: {a.dtype} {a.shape}, expected shape {shape}")


def first_repeating_row(a: np.ndarray, block_rows: int = 1 << 14) -> int | None:
    """The first row of a 2-D integer array that holds a value twice, or None. Vectorised without sorting:
    a block of rows is compared, flattened, with itself ``s`` places on for every ``s`` < the row length
    (contiguous comparisons, blocks that fit the cache); an equal pair counts when both places lie in one
    row. At 1.37M x 12: ~0.03 s, about a third of ``np.sort(axis=1)``'s time."""
    n, k = a.shape
    for lo in range(0, n, block_rows):
        flat = np.ascontiguousarray(a[lo:lo + block_rows]).reshape(-1)
        first = None
        for s in range(1, k):
            hit = np.flatnonzero(flat[:-s] == flat[s:])
            if hit.size:
                hit = hit[hit % k < k - s]  # both places in one row
                if hit.size and (first is None or hit[0] // k < first):
                    first = int(hit[0]) // k
        if first is not None:
            return lo + first
    return None


def _rows_ok(name: str, a: np.ndarray, n_articles: int) -> None:
    if a.size and (int(a.min()) < 0 or int(a.max()) >= n_articles):
        raise SnapshotError(f"{name}: article position outside 0..{n_articles - 1}")
    dup = first_repeating_row(a)
    if dup is not None:
        raise SnapshotError(f"{name}: row {dup} repeats an article")


def _check_arrays(where: str, arrays: dict[str, np.ndarray], info: dict) -> None:
    """The invariants of a snapshot of the right shapes: ids sorted and unique, rows a permutation of
    0..n-1, every row of recommendations and fallback 12 distinct known article positions, article ids
    ASCII. Raises ``SnapshotError`` with the first problem found."""
    ids, rows, recs, arts, fb = (arrays[f] for f in FILES)
    n, n_art = len(ids), len(arts)
    if n and not bool((ids[1:] > ids[:-1]).all()):
        raise SnapshotError(f"{where}/customer_ids.npy: ids not sorted and unique")
    if n and (int(rows.min()) < 0 or int(rows.max()) >= n or not bool((np.bincount(rows, minlength=n) == 1).all())):
        raise SnapshotError(f"{where}/customer_rows.npy: not a permutation of 0..{n - 1}")
    _rows_ok(f"{where}/recommendations.npy", recs, n_art)
    _rows_ok(f"{where}/fallback.npy", fb, n_art)
    if arts.size and int(arts.view(np.uint8).max()) >= 0x80:
        raise SnapshotError(f"{where}/article_ids.npy: not ASCII")


def _check_content_shapes(content: SnapshotContent) -> str:
    where = f"snapshot {content.week}"
    _check_shapes(where, content.arrays, content.info)
    if content.info["week"] != content.week:
        raise SnapshotError(f"{where}: the manifest names week {content.info['week']}")
    return where


def check_content(content: SnapshotContent) -> None:
    """What ``load_snapshot`` checks, on content not yet written (``SnapshotError`` with the problem)."""
    where = _check_content_shapes(content)
    _check_arrays(where, {name: np.ascontiguousarray(content.arrays[name]) for name in FILES}, content.info)


# ---------------------------------------------------------------------------------------------- loading


def _map(path: Path):
    """A file's bytes, memory-mapped read-only (pages faulted in up front where the OS can)."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return b""
        if hasattr(mmap, "MAP_POPULATE"):
            return mmap.mmap(fh.fileno(), size, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE, prot=mmap.PROT_READ)
        return mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_READ)


def _npy_array(buf) -> np.ndarray:
    """The array of an ``.npy`` file's bytes, over those bytes (no copy); ValueError unless the header
    is well formed, the dtype holds no Python objects and the data fills the rest of the file exactly."""
    head = _bytes_io.BytesIO(buf[: 1 << 16])
    version = npy.read_magic(head)
    if version != (1, 0):  # what publish writes
        raise ValueError(f".npy format {version}")
    (length,) = struct.unpack("<H", head.read(2))
    try:  # numpy would retry a header that is no literal as a Python 2 one, with a warning
        ast.literal_eval(head.read(length).decode("latin1"))
    except (SyntaxError, ValueError) as e:
        raise ValueError(f"a header that is no literal ({e})") from None
    head.seek(8)
    shape, fortran, dtype = npy.read_array_header_1_0(head)
    if dtype.hasobject:
        raise ValueError(f"dtype {dtype} holds Python objects")
    offset, size = head.tell(), int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if offset + size != len(buf):
        raise ValueError(f"{len(buf) - offset} data bytes, {shape} {dtype} needs {size}")
    return np.ndarray(shape, dtype, buffer=buf, offset=offset, order="F" if fortran else "C")


def load_snapshot(path: str | os.PathLike) -> Snapshot:
    """Map and validate a snapshot folder: manifest readable and naming this folder, content hash equal to
    the version, every array of the right type and shape, ids sorted and unique, rows a permutation, every
    row 12 distinct known articles. Raises ``SnapshotError`` with the first problem found; a hash that
    does not match is reported before any other problem of the arrays (they are the corrupt bytes).

    Each file is mapped once; the content hash of the mapped bytes runs on a thread while the arrays made
    over the same mappings are checked, so what was hashed is what is served."""
    t0 = time.perf_counter()
    phases = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        phases[name] = round(now - since, 4)
        return now

    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise SnapshotError(f"{path}: no {MANIFEST} (not a snapshot, or not completely written)") from None
    except (OSError, ValueError) as e:
        raise SnapshotError(f"{path}/{MANIFEST}: unreadable ({e})") from None
    if not isinstance(manifest, dict) or "version" not in manifest:
        raise SnapshotError(f"{path}/{MANIFEST}: missing field 'version'")
    version = manifest["version"]
    _check_info(str(path), manifest)
    if path.name != version or path.parent.name != manifest["week"]:
        raise SnapshotError(f"{path}: the manifest says {manifest['week']}/{version}, the folder is {path.parent.name}/{path.name}")
    missing = [f for f in FILES if not (path / f).is_file()]
    if missing:
        raise SnapshotError(f"{path}: missing {', '.join(missing)}")
    try:
        bufs = {f: _map(path / f) for f in FILES}
    except (OSError, ValueError) as e:
        raise SnapshotError(f"{path}: unreadable file ({e})") from None
    t = lap("map", t0)
    info = {key: value for key, value in manifest.items() if key != "version"}
    problem = None
    with ThreadPoolExecutor(1, thread_name_prefix="snapshot-hash") as pool:
        started = time.perf_counter()
        digest = pool.submit(lambda: (_content_hash(info, [(f, [bufs[f]]) for f in FILES]), time.perf_counter() - started))
        try:
            try:
                a = {f: _npy_array(bufs[f]) for f in FILES}
            except ValueError as e:
                raise SnapshotError(f"{path}: unreadable array ({e})") from None
            _check_shapes(str(path), a, manifest)
            _check_arrays(str(path), a, manifest)
        except SnapshotError as e:
            problem = e
        t = lap("check", t)
        got, phases["hash"] = digest.result()
        phases["hash"] = round(phases["hash"], 4)
    t = lap("hash_wait", t)
    if got != version:
        raise SnapshotError(f"{path}: content hash {got} does not match the version {version} (corrupt or modified)")
    if problem is not None:
        raise problem
    ids, rows, recs, arts, fb = (a[f] for f in FILES)
    article_ids = tuple(x.decode("ascii") for x in arts.tolist())
    fallback = tuple(tuple(article_ids[i] for i in row) for row in fb.tolist())
    lap("objects", t)
    return Snapshot(path, manifest, ids, rows, recs, article_ids, fallback, load_seconds=time.perf_counter() - t0,
                    load_phases=phases)


def load_current(root: str | os.PathLike) -> Snapshot:
    """The snapshot ``root/current`` names (``SnapshotError`` when there is none or it is refused)."""
    pointer = read_pointer(root)
    if pointer is None:
        raise SnapshotError(f"no snapshot published under {root} ({POINTER} is missing)")
    return load_snapshot(Path(root) / pointer)

