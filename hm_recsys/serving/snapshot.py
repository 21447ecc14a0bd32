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

Arrays are memory-mapped (``np.load(mmap_mode="r")``): a load maps files instead of building Python
objects (a dict of 1.37M ids takes ~10 s and ~210 MiB to build; the sorted array costs nothing to load),
so a switch is bounded by the validation pass (~1.6 s at full scale: hash 0.4 s, rows distinct 0.55 s,
ids sorted 0.6 s), and the pages are the page cache's, shared by every worker on the host.

A version folder is published with ``io.create_once`` (same version => same bytes) and only then named by
``current``; versions the pointer moved away from are deleted (a server that mapped them keeps its
mapping). ``load_snapshot`` refuses a folder whose manifest, hash, shapes or rows are wrong
(``SnapshotError`` with the reason), so a corrupt or hand-copied half snapshot never serves.
"""

from __future__ import annotations

import hashlib
import io as _bytes_io
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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

    def blobs(self) -> dict[str, bytes]:
        out = {}
        for name in FILES:
            buf = _bytes_io.BytesIO()
            np.save(buf, self.arrays[name], allow_pickle=False)
            out[name] = buf.getvalue()
        return out


def _content_hash(info: dict, blobs) -> str:
    """BLAKE2b-128 over the manifest's content fields (canonical JSON) and every file's name and bytes."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(info, sort_keys=True, separators=(",", ":")).encode())
    for name, chunks in blobs:
        h.update(name.encode() + b"\0")
        for chunk in chunks:
            h.update(chunk)
    return h.hexdigest()


def _file_chunks(path: Path):
    with open(path, "rb") as fh:
        yield from iter(lambda: fh.read(1 << 22), b"")


def file_hash(path: str | os.PathLike) -> str:
    h = hashlib.blake2b(digest_size=16)
    for chunk in _file_chunks(Path(path)):
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


def publish(root: str | os.PathLike, content: SnapshotContent) -> Published:
    """Write the snapshot once under ``root/<week>/<version>/``, then point ``current`` at it unless a newer
    week is current; the versions ``current`` moved away from (this week's others, older weeks) are deleted."""
    from hm_recsys import io

    root = Path(root)
    blobs = content.blobs()
    version = _content_hash(content.info, [(name, [blobs[name]]) for name in FILES])
    target = root / content.week / version
    with io.create_once(target) as tmp:
        tmp.mkdir()
        for name in FILES:
            (tmp / name).write_bytes(blobs[name])
        (tmp / MANIFEST).write_text(json.dumps({**content.info, "version": version}, indent=2, sort_keys=True) + "\n")
    pointer = f"{content.week}/{version}"
    now = read_pointer(root)
    is_current = now is None or now.split("/")[0] <= content.week
    if is_current and now != pointer:
        with io.atomic_path(root / POINTER) as tmp:
            tmp.write_text(pointer + "\n")
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
    return Published(target, content.week, version, is_current, sum(len(b) for b in blobs.values()))


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


def _rows_ok(name: str, a: np.ndarray, n_articles: int) -> None:
    if a.size and (int(a.min()) < 0 or int(a.max()) >= n_articles):
        raise SnapshotError(f"{name}: article position outside 0..{n_articles - 1}")
    s = np.sort(a, axis=1)
    dup = np.flatnonzero((s[:, 1:] == s[:, :-1]).any(axis=1))
    if dup.size:
        raise SnapshotError(f"{name}: row {int(dup[0])} repeats an article")


def load_snapshot(path: str | os.PathLike) -> Snapshot:
    """Map and validate a snapshot folder: manifest readable and naming this folder, content hash equal to
    the version, every array of the right type and shape, ids sorted and unique, rows a permutation, every
    row 12 distinct known articles. Raises ``SnapshotError`` with the first problem found."""
    t0 = time.perf_counter()
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise SnapshotError(f"{path}: no {MANIFEST} (not a snapshot, or not completely written)") from None
    except (OSError, ValueError) as e:
        raise SnapshotError(f"{path}/{MANIFEST}: unreadable ({e})") from None
    try:
        version, week, k, n, n_art = (manifest[f] for f in ("version", "week", "k", "n_customers", "n_articles"))
        labels, edges = manifest["fallback_groups"], manifest["age_edges"]
    except (KeyError, TypeError) as e:
        raise SnapshotError(f"{path}/{MANIFEST}: missing field {e}") from None
    if manifest.get("format") != FORMAT:
        raise SnapshotError(f"{path}: format {manifest.get('format')!r}, this server reads format {FORMAT}")
    if path.name != version or path.parent.name != week:
        raise SnapshotError(f"{path}: the manifest says {week}/{version}, the folder is {path.parent.name}/{path.name}")
    if k != K or len(labels) != len(age_group_labels(tuple(edges))) + 1:
        raise SnapshotError(f"{path}: k={k} or {len(labels)} fallback lists do not match the format")
    missing = [f for f in FILES if not (path / f).is_file()]
    if missing:
        raise SnapshotError(f"{path}: missing {', '.join(missing)}")
    info = {key: value for key, value in manifest.items() if key != "version"}
    got = _content_hash(info, [(f, _file_chunks(path / f)) for f in FILES])
    if got != version:
        raise SnapshotError(f"{path}: content hash {got} does not match the version {version} (corrupt or modified)")
    try:
        a = {f: np.load(path / f, mmap_mode="r", allow_pickle=False) for f in FILES}
    except (OSError, ValueError) as e:
        raise SnapshotError(f"{path}: unreadable array ({e})") from None
    ids, rows, recs, arts, fb = (a[f] for f in FILES)
    expect = {"customer_ids.npy": (ids.dtype.kind == "S", (n,)), "customer_rows.npy": (rows.dtype == np.int32, (n,)),
              "recommendations.npy": (recs.dtype == np.int32, (n, K)), "article_ids.npy": (arts.dtype.kind == "S", (n_art,)),
              "fallback.npy": (fb.dtype == np.int32, (len(labels), K))}
    for f, (dtype_ok, shape) in expect.items():
        if not dtype_ok or a[f].shape != shape:
            raise SnapshotError(f"{path}/{f}: {a[f].dtype} {a[f].shape}, expected shape {shape}")
    if n and not bool((ids[1:] > ids[:-1]).all()):
        raise SnapshotError(f"{path}/customer_ids.npy: ids not sorted and unique")
    if n and (int(rows.min()) < 0 or int(rows.max()) >= n or not bool((np.bincount(rows, minlength=n) == 1).all())):
        raise SnapshotError(f"{path}/customer_rows.npy: not a permutation of 0..{n - 1}")
    _rows_ok(f"{path}/recommendations.npy", recs, n_art)
    _rows_ok(f"{path}/fallback.npy", fb, n_art)
    article_ids = tuple(x.decode("ascii") for x in arts.tolist())
    fallback = tuple(tuple(article_ids[i] for i in row) for row in fb.tolist())
    return Snapshot(path, manifest, ids, rows, recs, article_ids, fallback, load_seconds=time.perf_counter() - t0)


def load_current(root: str | os.PathLike) -> Snapshot:
    """The snapshot ``root/current`` names (``SnapshotError`` when there is none or it is refused)."""
    pointer = read_pointer(root)
    if pointer is None:
        raise SnapshotError(f"no snapshot published under {root} ({POINTER} is missing)")
    return load_snapshot(Path(root) / pointer)

