"""Commits with no lock, safe across processes and hosts sharing one data root (``hm_recsys.io``):
content-keyed artifacts are published once (the loser of a race uses the winner's copy), replaceable
directories are links switched in one step, and a writer killed anywhere leaves the old or the new."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import pytest

from hm_recsys import io

SPAWN = mp.get_context("spawn")
N_FILES = 20


def _write_folder(folder: Path, token: str) -> None:
    folder.mkdir()
    for i in range(N_FILES):
        (folder / f"part-{i:02d}.txt").write_text(f"{token}:{i}\n" * 200)
    (folder / "manifest.json").write_text(json.dumps({"token": token, "files": N_FILES}))


def _read_folder(folder: Path) -> str:
    """The folder's token if it is one complete version (all parts, all of one token), else an error."""
    token = json.loads((folder / "manifest.json").read_text())["token"]
    parts = sorted(p.name for p in folder.iterdir() if p.name.startswith("part-"))
    assert parts == [f"part-{i:02d}.txt" for i in range(N_FILES)], parts
    for i in range(N_FILES):
        assert (folder / f"part-{i:02d}.txt").read_text() == f"{token}:{i}\n" * 200
    return token


def _publish(kind: str, target: str, token: str, barrier) -> str:
    """Child: write ``target`` (``create_once`` or ``atomic_path``), meeting the other writer just before
    publishing so both publish at the same moment."""
    commit = io.create_once if kind == "keyed" else io.atomic_path
    with commit(target) as tmp:
        _write_folder(tmp, token)
        barrier.wait(timeout=60)
    if kind != "keyed":  # the other writer may be replacing it right now: the parent reads it once both are done
        return token
    return _read_folder(Path(target))


def _publish_file(target: str, token: str, barrier) -> str:
    with io.create_once(target) as tmp:
        tmp.write_text(token * 1000)
        barrier.wait(timeout=60)
    return Path(target).read_text()[: len(token)]


def _race(fn, *args_per_child):
    """Each child's result. The pool is closed and joined, not terminated: termination sends SIGTERM, which a
    child ignores when the test process ignored SIGINT at start (a background job): dagster's interrupt
    handling maps SIGTERM to SIGINT's disposition, ``SIG_IGN`` survives exec, and the join would never end."""
    barrier = SPAWN.Manager().Barrier(len(args_per_child))
    with SPAWN.Pool(len(args_per_child)) as pool:
        results = [pool.apply_async(fn, (*args, barrier)) for args in args_per_child]
        got = [r.get(timeout=120) for r in results]
        pool.close()
        pool.join()
        return got


def _siblings(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir() if p.name != target.name)


def _only_published(target: Path) -> list[str]:
    """What may sit beside a published folder: its current version folder when it is a link."""
    return [os.readlink(target)] if target.is_symlink() else []


@pytest.fixture(params=["exchange", "links"])
def mode(request, monkeypatch, tmp_path):
    """Replaced folders swapped in place (local filesystems) or published as links (NFS): both tested.
    Spawned children inherit the environment."""
    monkeypatch.setenv(io.LINKS_ENV, "1" if request.param == "links" else "0")
    if request.param == "exchange" and not io._can_exchange(tmp_path):
        pytest.skip("this filesystem has no renameat2(RENAME_EXCHANGE)")
    return request.param


def test_two_processes_publish_the_same_keyed_folder_once(tmp_path):
    for round_ in range(3):
        target = tmp_path / f"key{round_}"
        got = _race(_publish, ("keyed", str(target), "same"), ("keyed", str(target), "same"))
        assert got == ["same", "same"]  # both succeed, each reading the one published copy
        assert _read_folder(target) == "same" and target.is_dir() and not target.is_symlink()
        assert not [s for s in _siblings(target) if s.startswith(f".{target.name}.")]  # loser's copy discarded
    file = tmp_path / "key.bin"
    assert _race(_publish_file, (str(file), "A"), (str(file), "A")) == ["A", "A"]
    assert file.read_text() == "A" * 1000 and not [s for s in _siblings(file) if s.startswith(".key.bin.")]


def test_keyed_publish_keeps_the_first_copy(tmp_path):
    target = tmp_path / "key"
    with io.create_once(target) as tmp:
        _write_folder(tmp, "first")
    with io.create_once(target) as tmp:
        _write_folder(tmp, "second")
    assert _read_folder(target) == "first" and _siblings(target) == []


def test_two_processes_replacing_one_folder_leave_one_whole_version(tmp_path, mode):
    target = tmp_path / "week"
    with io.atomic_path(target) as tmp:
        _write_folder(tmp, "old")
    for _ in range(2):
        _race(_publish, ("replace", str(target), "a"), ("replace", str(target), "b"))
        assert _read_folder(target) in {"a", "b"}
        assert target.is_symlink() == (mode == "links")
        # links: when both read the link before either switched it, the first switched-to version is left over
        # (whole: a writer deletes only the version it saw replaced; older ones go after STALE_VERSION_S)
        extra = [s for s in _siblings(target) if s not in _only_published(target)]
        assert all(_read_folder(target.parent / s) in {"a", "b"} for s in extra), extra
        io.sweep_versions(target, stale_s=0)
        assert _siblings(target) == _only_published(target)  # nothing else is left


def _killed_writer(target: str, where: str) -> None:
    """Child: replace (or publish) ``target`` and die with no cleanup at ``where``."""
    io._can_exchange(Path(target).parent)  # probed before the hooks below
    if where == "before_switch":
        io._switch_link = io._exchange = lambda *a: os._exit(9)
    elif where == "before_sweep":
        io.sweep_versions = io._remove = lambda *a, **k: os._exit(9)
    elif where == "keyed_before_publish":
        os.rename = lambda *a: os._exit(9)
    commit = io.create_once if where.startswith("keyed") else io.atomic_path
    with commit(target) as tmp:
        _write_folder(tmp, "new")
        if where == "in_block":
            os._exit(9)


@pytest.mark.parametrize("where", ["in_block", "before_switch", "before_sweep", "keyed_before_publish"])
def test_a_writer_killed_before_publishing_leaves_the_old_or_the_new(tmp_path, where, mode):
    target = tmp_path / "art"
    if not where.startswith("keyed"):
        with io.atomic_path(target) as tmp:
            _write_folder(tmp, "old")
    child = SPAWN.Process(target=_killed_writer, args=(str(target), where))
    child.start()
    child.join(60)
    assert child.exitcode == 9
    want = {"in_block": "old", "before_switch": "old", "before_sweep": "new"}.get(where)
    if want is None:  # a keyed artifact nobody published: absent, and the next writer publishes it
        assert not target.exists()
        with io.create_once(target) as tmp:
            _write_folder(tmp, "new")
        want = "new"
    assert _read_folder(target) == want
    # what the killed writer left is garbage, never the artifact: swept once stale, the artifact intact
    assert io.collect_garbage(tmp_path, stale_s=0) or where == "keyed_before_publish"
    assert _read_folder(target) == want and _siblings(target) == _only_published(target)


def _replace_forever(target: str) -> None:
    n = 0
    while True:
        n += 1
        with io.atomic_path(target) as tmp:
            _write_folder(tmp, f"v{n}")


def test_sigkill_at_any_moment_leaves_a_whole_version(tmp_path, mode):
    target = tmp_path / "art"
    with io.atomic_path(target) as tmp:
        _write_folder(tmp, "v0")
    for delay in (0.3, 0.45, 0.6, 0.75):
        child = SPAWN.Process(target=_replace_forever, args=(str(target),))
        child.start()
        time.sleep(delay + 1.5)  # the child's start (imports) takes about a second
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)
        assert _read_folder(target).startswith("v")
    io.collect_garbage(tmp_path, stale_s=0)
    assert _siblings(target) == _only_published(target)


def _replace_once(target: str, token: str) -> None:
    with io.atomic_path(target) as tmp:
        _write_folder(tmp, token)


def test_replacing_a_folder_under_an_open_reader(tmp_path, mode):
    target = tmp_path / "art"
    _replace_once(str(target), "old")
    manifest = open(target / "manifest.json")  # a reader holds the old version's files open
    part = open(target / "part-07.txt")
    head = part.read(10)
    child = SPAWN.Process(target=_replace_once, args=(str(target), "new"))  # another process replaces it
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert json.load(manifest)["token"] == "old" and head + part.read() == "old:7\n" * 200  # its view intact
    manifest.close()
    part.close()
    assert _read_folder(target) == "new"  # a reader opening by the name now gets the new version, whole


def test_a_replaced_folder_reads_as_before(tmp_path, mode):
    """Readers go by the published name: listing, globbing, hashing (rglob from the folder); a real folder
    written before links is replaced (in links mode: becomes a link, swapped atomically where possible)."""
    from hm_recsys.defs.versioning import hash_files

    legacy = tmp_path / "legacy"
    _write_folder(legacy, "old")
    digest_old = hash_files(legacy)
    _replace_once(str(legacy), "old")
    assert legacy.is_symlink() == (mode == "links") and hash_files(legacy) == digest_old
    assert _read_folder(legacy) == "old" and _siblings(legacy) == _only_published(legacy)
    assert sorted(p.name for p in legacy.glob("part-0*.txt")) == [f"part-0{i}.txt" for i in range(10)]
    if mode == "links":
        assert not os.path.isabs(os.readlink(legacy))  # relative: valid wherever the data root is mounted
    else:  # a real folder: a glob over its parent sees it once, as before
        assert sorted(p.name for p in tmp_path.glob("*/part-0*.txt")) == [f"part-0{i}.txt" for i in range(10)]


def _write_window(tables_dir: str, shards: str, out: str, barrier) -> dict:
    from hm_recsys.retrieval import tfrecords as tfr
    from hm_recsys.tables import load_tables
    from hm_recsys_tests.test_retrieval_tfrecords import TARGET

    tables = load_tables(tables_dir)
    barrier.wait(timeout=120)
    return tfr.write_weekly_window(tables, TARGET, shards, out, train_weeks=6, finetune_weeks=2, writers=2)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_shard_writers_of_two_processes_give_the_same_shards(tiny_world, tiny_tables, tmp_path):
    from hm_recsys.retrieval import tfrecords as tfr
    from hm_recsys_tests.test_retrieval_tfrecords import TARGET

    shared = tmp_path / "shared"
    got = _race(_write_window, (str(tiny_world.tables), str(shared), str(tmp_path / "w1")),
                (str(tiny_world.tables), str(shared), str(tmp_path / "w2")))
    serial = tfr.write_weekly_window(tiny_tables, TARGET, tmp_path / "serial", tmp_path / "w0", train_weeks=6,
                                     finetune_weeks=2, writers=1)
    want = _files(tmp_path / "serial")
    assert len([k for k in want if k.endswith(".gz")]) >= 5 and _files(shared) == want  # no lock, no .tmp left
    assert got[0]["shard_dirs"] == got[1]["shard_dirs"] == serial["shard_dirs"]
    assert got[0]["windows"] == got[1]["windows"] == serial["windows"]
    assert all(len(list((shared / w).iterdir())) == 1 for w in serial["weeks"]["train"])
