"""Atomic commits: an artifact is either complete on disk or absent, never half-written or missing.

Every commit is ONE atomic filesystem step, so a process killed at any point leaves the old artifact or
the new one, and no host-local lock is needed when steps on several hosts share one POSIX data root:

- ``atomic_path`` (a replaceable artifact: a week's folder rebuilt by a newer run, a file overwritten):
  a file is renamed over the old one (``os.replace``). POSIX cannot rename a directory over a non-empty
  one, so a directory is swapped with the old one by ``renameat2(RENAME_EXCHANGE)`` where the filesystem
  has it (ext4, xfs, btrfs, tmpfs: the folder stays a real folder, and every reader, ``rglob`` included,
  sees what it saw before), the old one then deleted. Where it has not (NFS and most network
  filesystems, probed once per device; ``$HM_ATOMIC_LINKS=1`` forces it), the published name is a
  *symlink* to an immutable version folder beside it (``.<name>.<hex>.ver``, relative target, so hosts
  may mount the data root at different paths): the new version is renamed into place, then a new link
  replaces the old one with ``os.replace``, and the replaced version is deleted. Readers use the normal
  name and follow the link. A killed writer leaves at worst a temporary or an unreferenced version
  (garbage: ``collect_garbage``), never a gap.
- ``create_once`` (a content-keyed artifact: same key => same bytes): the temporary is published with a
  step that fails when the target exists (``rename`` of a directory onto a non-empty one, ``link`` of a
  file); the writer that lost discards its copy and everyone uses the winner's.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

import polars as pl

TMP_SUFFIX = ".tmp"  # a block's scratch (``launcher.recover`` removes leftovers of killed commands)
VERSION_SUFFIX = ".ver"  # an immutable version of a replaceable directory, the target of its link
LINKS_ENV = "HM_ATOMIC_LINKS"  # "1": publish replaced folders as links even where exchange works (tests)
STALE_VERSION_S = 3600  # an unreferenced version older than this is a killed writer's leftover: swept
_VERSION = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{12}" + re.escape(VERSION_SUFFIX))


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{suffix}")


def is_version_dir(name: str) -> bool:
    """Whether ``name`` is a version folder (``.<artifact>.<hex>.ver``): reached through its artifact's link."""
    return _VERSION.fullmatch(name) is not None


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _link_target(path: Path) -> str | None:
    try:
        return os.readlink(path)
    except OSError:  # absent, or not a link
        return None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two names atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported (NFS)."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _switch_link(link: Path, path: Path) -> None:
    """``os.replace(link, path)``, also where ``path`` is still a real directory (written before links)."""
    for _ in range(10):
        try:
            os.replace(link, path)
            return
        except IsADirectoryError:
            pass
        with contextlib.suppress(OSError):  # an empty directory holds nothing to lose
            path.rmdir()
            continue
        if not (path.is_dir() and not path.is_symlink()):
            continue  # another writer just switched it: retry
        if _exchange(link, path):  # one-time migration, atomic where the filesystem supports it
            _remove(link)
            return
        old = _sibling(path, ".old")  # where it does not: the old two-step, once per legacy folder
        with contextlib.suppress(FileNotFoundError):
            path.rename(old)
        try:
            os.replace(link, path)
        finally:
            shutil.rmtree(old, ignore_errors=True)
        return
    raise OSError(errno.EBUSY, f"could not publish {path}: it keeps changing")


def sweep_versions(path: str | os.PathLike, *also: str | None, stale_s: float = STALE_VERSION_S) -> list[Path]:
    """Delete ``path``'s version folders that its link does not point to: those named in ``also`` now,
    the others once older than ``stale_s`` (a writer between renaming its version and switching the link
    must not lose it). Returns what was deleted."""
    path = Path(path)
    current = _link_target(path)
    removed = []
    try:
        siblings = list(os.scandir(path.parent))
    except FileNotFoundError:
        return removed
    now = time.time()
    for entry in siblings:
        m = _VERSION.fullmatch(entry.name)
        if not m or m["name"] != path.name or entry.name == current:
            continue
        try:
            age = now - entry.stat(follow_symlinks=False).st_ctime
        except FileNotFoundError:
            continue
        if entry.name in also or age > stale_s:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    return removed


def collect_garbage(root: str | os.PathLike, stale_s: float = STALE_VERSION_S) -> list[Path]:
    """Leftovers of killed writers under ``root`` older than ``stale_s``: temporaries (``.*.tmp``, ``.*.old``)
    and version folders their artifact's link does not point to. Safe while steps of other hosts write
    (theirs are younger); links are not followed, so every version folder is seen once. Returns them."""
    removed, now = [], time.time()
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            p = Path(folder, name)
            m = _VERSION.fullmatch(name)
            if m:
                if _link_target(p.with_name(m["name"])) == name:
                    continue
            elif not name.startswith(".") or not name.endswith((TMP_SUFFIX, ".old")):
                continue
            try:
                if now - p.lstat().st_ctime <= stale_s:
                    continue
            except FileNotFoundError:
                continue
            _remove(p)
            removed.append(p)
        dirs[:] = [d for d in dirs if Path(folder, d).exists()]
    return removed


_EXCHANGE_BY_DEVICE: dict[int, bool] = {}


def _can_exchange(folder: Path) -> bool:
    """Whether ``folder``'s filesystem swaps two names atomically (probed once per device)."""
    if os.environ.get(LINKS_ENV) == "1":
        return False
    dev = folder.stat().st_dev
    if dev not in _EXCHANGE_BY_DEVICE:
        a, b = _sibling(folder / "probe", TMP_SUFFIX), _sibling(folder / "probe", TMP_SUFFIX)
        try:
            a.touch()
            b.touch()
            _EXCHANGE_BY_DEVICE[dev] = _exchange(a, b)
        finally:
            _remove(a)
            _remove(b)
    return _EXCHANGE_BY_DEVICE[dev]


def _publish_dir(tmp: Path, path: Path) -> None:
    if not path.is_symlink() and _can_exchange(path.parent):  # a real folder, swapped in one step
        try:
            os.rename(tmp, path)  # nothing there yet (or an empty folder)
            return
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                raise
        if _exchange(tmp, path):  # ``tmp`` now holds the old folder: the caller removes it
            return
    version = _sibling(path, VERSION_SUFFIX)
    os.rename(tmp, version)  # a new unique name: nothing to clobber
    replaced = _link_target(path)
    try:
        os.symlink(version.name, tmp)  # relative: valid wherever the data root is mounted
        _switch_link(tmp, path)  # the one step readers can see
    except BaseException:
        if _link_target(path) != version.name:
            shutil.rmtree(version, ignore_errors=True)
        raise
    sweep_versions(path, replaced, version.name)


@contextlib.contextmanager
def _staged(path: str | os.PathLike, publish) -> Iterator[Path]:
    """A temporary path beside ``path``, handed to ``publish(tmp, path)`` if the block succeeds, removed after."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path, TMP_SUFFIX)
    try:
        yield tmp
        publish(tmp, path)
    finally:
        _remove(tmp)


def _replace(tmp: Path, path: Path) -> None:
    if tmp.is_dir() and not tmp.is_symlink():
        _publish_dir(tmp, path)
    else:
        os.replace(tmp, path)


def _create(tmp: Path, path: Path) -> None:
    if tmp.is_dir() and not tmp.is_symlink():
        try:
            os.rename(tmp, path)  # fails onto a non-empty directory (or a file)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                raise
    else:
        try:
            os.link(tmp, path)  # fails if the name exists
        except FileExistsError:
            pass


def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; publish it as ``path`` only if the block succeeds.

    Works for files and directories (a directory target is replaced as a whole: ``path`` becomes a link to
    an immutable version folder, switched in one step). Concurrent writers: the last one wins, whole.
    """
    return _staged(path, _replace)


def create_once(path: str | os.PathLike):
    """Like ``atomic_path`` for a content-keyed ``path`` (same name => same bytes), which is never replaced:
    the temporary is published only if ``path`` does not exist yet, in one step that fails otherwise; then
    (another writer got there first) ours is discarded and theirs stands. Read the result from ``path``.
    """
    return _staged(path, _create)


def write_parquet(df: pl.DataFrame, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        df.write_parquet(tmp, compression="zstd", statistics=True)
    return Path(path)


@contextlib.contextmanager
def parquet_parts(path: str | os.PathLike, schema: dict) -> Iterator[Callable[[pl.DataFrame], None]]:
    """``write(frame)`` appends a frame (row groups) to one Parquet file, published whole when the block ends.

    Why: a file too large to hold as one frame (a step's output that grows with customers x candidates) is
    written as it is computed; readers see the same file as ``write_parquet`` of the frames concatenated.
    """
    import pyarrow.parquet as pq

    arrow_schema = pl.DataFrame(schema=schema).to_arrow().schema
    with atomic_path(path) as tmp:
        with pq.ParquetWriter(tmp, arrow_schema, compression="zstd") as writer:
            def write(frame: pl.DataFrame) -> None:
                if dict(frame.schema) != dict(schema):
                    raise ValueError(f"{Path(path).name}: a part's schema {dict(frame.schema)} is not {dict(schema)}")
                writer.write_table(frame.to_arrow())

            yield write


def write_csv(df: pl.DataFrame, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        df.write_csv(tmp)
    return Path(path)


def write_json(obj, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    return Path(path)
