"""The serving snapshot and the recommendations API (hm_recsys/serving): small synthetic snapshots built
directly, no pipeline run, except the one slow test that serves what the backtest's pipeline published."""

from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from hm_recsys.candidates.popular import AGE_EDGES
from hm_recsys.serving import snapshot as S
from hm_recsys.serving.app import create_app

WEEK = "2020-09-23"


def content(seed: int, week: str = WEEK, n_customers: int = 60, n_articles: int = 40,
            duplicate_row: int | None = None) -> S.SnapshotContent:
    """A synthetic snapshot: the same customer ids whatever the seed (so one id is asked of every version),
    each seed with its own recommendations."""
    ids_rng, rng = np.random.default_rng(0), np.random.default_rng(seed)
    ids = np.array([bytes(r).hex() for r in ids_rng.integers(0, 256, (n_customers, 32), dtype=np.uint8)]).astype("S")
    order = np.argsort(ids, kind="stable").astype(np.int32)
    recs = np.stack([rng.permutation(n_articles)[: S.K] for _ in range(n_customers)]).astype(np.int32)
    if duplicate_row is not None:
        recs[duplicate_row, 1] = recs[duplicate_row, 0]
    labels = [S.OVERALL, *S.age_group_labels(AGE_EDGES)]
    fallback = np.stack([rng.permutation(n_articles)[: S.K] for _ in labels]).astype(np.int32)
    arrays = {"customer_ids.npy": ids[order], "customer_rows.npy": order, "recommendations.npy": recs,
              "article_ids.npy": np.array([f"{700000000 + i:010d}" for i in range(n_articles)]).astype("S"),
              "fallback.npy": fallback}
    info = {"format": S.FORMAT, "week": week, "k": S.K, "n_customers": n_customers, "n_articles": n_articles,
            "age_edges": list(AGE_EDGES), "fallback_groups": labels, "built_from": {"seed": seed}}
    return S.SnapshotContent(week, arrays, info)


def customer_ids(c: S.SnapshotContent) -> list[str]:
    """Ids in customer_idx order."""
    ids = np.empty_like(c.arrays["customer_ids.npy"])
    ids[c.arrays["customer_rows.npy"]] = c.arrays["customer_ids.npy"]
    return [i.decode() for i in ids.tolist()]


def expected(c: S.SnapshotContent, row: int, n: int = S.K) -> list[str]:
    arts = c.arrays["article_ids.npy"]
    return [arts[a].decode() for a in c.arrays["recommendations.npy"][row, :n]]


def test_publish_is_content_keyed_and_current_follows_the_newest_week(tmp_path):
    a, b = content(1), content(2)
    pa = S.publish(tmp_path, a)
    assert (pa.current, S.read_pointer(tmp_path)) == (True, f"{WEEK}/{pa.version}")
    assert S.publish(tmp_path, a).version == pa.version  # same content, same version, written once
    snap = S.load_current(tmp_path)
    ids = customer_ids(a)
    assert [snap.row(i) for i in ids] == list(range(len(ids)))
    assert snap.recommend(ids[7], 5).articles == expected(a, 7, 5)
    assert snap.row("0" * 64) is None and snap.row("é") is None and snap.row("") is None
    pb = S.publish(tmp_path, b)  # a new version of the week: current moves, the old version goes
    assert pb.version != pa.version and S.read_pointer(tmp_path) == f"{WEEK}/{pb.version}"
    assert sorted(p.name for p in (tmp_path / WEEK).iterdir()) == [pb.version]
    assert snap.recommend(ids[7], 5).articles == expected(a, 7, 5)  # a loaded snapshot keeps its mapping
    newer = S.publish(tmp_path, content(3, week="2020-09-30"))  # the next week: older weeks go
    assert newer.current and not (tmp_path / WEEK).exists()
    older = S.publish(tmp_path, content(4))  # built by hand for an older week: kept, not served
    assert not older.current and S.read_pointer(tmp_path) == f"2020-09-30/{newer.version}"
    assert S.load_snapshot(older.path).week == WEEK


def test_the_files_are_np_save_bytes_and_the_version_their_blake2b(tmp_path):
    """The zero-copy writer keeps the format: each file is what ``np.save`` writes, and the version is
    BLAKE2b-128 over the canonical manifest fields and each name and file, as it always was (a snapshot
    published before keeps its version)."""
    c = content(1)
    pub = S.publish(tmp_path, c)
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(c.info, sort_keys=True, separators=(",", ":")).encode())
    for name in S.FILES:
        buf = io.BytesIO()
        np.save(buf, c.arrays[name], allow_pickle=False)
        assert (pub.path / name).read_bytes() == buf.getvalue(), name
        h.update(name.encode() + b"\0" + buf.getvalue())
    assert pub.version == h.hexdigest() == pub.path.name
    assert sorted(p.name for p in pub.path.iterdir()) == sorted([*S.FILES, S.MANIFEST])
    assert sorted(p.name for p in pub.path.parent.iterdir()) == [pub.version]  # no staging folder left
    assert pub.size_bytes == sum((pub.path / f).stat().st_size for f in S.FILES)
    assert {"hash", "check", "write", "pointer", "total"} <= set(pub.seconds)
    snap = S.load_snapshot(pub.path)
    assert {"hash", "check"} <= set(snap.load_phases) and not snap.recommendations.flags.writeable


def test_first_repeating_row_agrees_with_sorting():
    """The sort-free row check finds the first row that repeats a value, wherever the pair lies in the row
    and wherever the row lies among the blocks; equal values in neighbouring rows are no repeat."""
    rng = np.random.default_rng(7)

    def by_sorting(a):
        s = np.sort(a, axis=1)
        rows = np.flatnonzero((s[:, 1:] == s[:, :-1]).any(axis=1))
        return int(rows[0]) if rows.size else None

    for _ in range(300):
        n, k = int(rng.integers(0, 40)), int(rng.integers(1, 14))
        a = np.argsort(rng.random((n, 50)), axis=1)[:, :k].astype(np.int32)  # distinct per row
        if n > 1 and k > 1:
            a[1:, 0] = a[:-1, -1]  # a row's last article first in the next: across rows, allowed
        for _ in range(int(rng.integers(0, 3))):
            if n and k > 1:
                r, i, j = int(rng.integers(n)), *rng.choice(k, 2, replace=False).tolist()
                a[r, i] = a[r, j]
        for block in (1, 3, 7, 1 << 14):
            assert S.first_repeating_row(a, block) == by_sorting(a), (a, block)


def test_api_contract(tmp_path):
    c = content(1)
    S.publish(tmp_path, c)
    ids = customer_ids(c)
    app = create_app(tmp_path, poll=False)
    assert app.state.holder.poll_once()
    with TestClient(app) as client:
        r = client.get(f"/recommendations/{ids[3]}")
        assert r.status_code == 200
        body = r.json()
        assert body["articles"] == expected(c, 3) and body["source"] == "personal" and body["fallback"] is None
        assert body["week"] == WEEK and body["version"] == app.state.holder.snapshot.version
        assert client.get(f"/recommendations/{ids[3]}", params={"n": 4}).json()["articles"] == expected(c, 3, 4)
        for n in (0, 13, "x"):  # n outside 1..12: a JSON 422
            r = client.get(f"/recommendations/{ids[3]}", params={"n": n})
            assert r.status_code == 422 and "detail" in r.json()
        fb = c.arrays["fallback.npy"]
        arts = [a.decode() for a in c.arrays["article_ids.npy"].tolist()]
        new = "f" * 64  # well formed, unknown: the overall fallback, marked as such
        body = client.get(f"/recommendations/{new}").json()
        assert (body["source"], body["fallback"], body["articles"]) == ("fallback", "overall", [arts[i] for i in fb[0]])
        body = client.get(f"/recommendations/{new}", params={"age": 33, "n": 3}).json()
        group = fb[1 + 4]  # age group 4: 30-34
        assert (body["source"], body["fallback"], body["articles"]) == ("fallback", "30-34", [arts[i] for i in group[:3]])
        for bad in ("xyz", "F" * 64, "a" * 63, "a" * 65, "a" * 300):
            r = client.get(f"/recommendations/{bad}")
            assert r.status_code == 422 and r.headers["content-type"] == "application/json", bad
            assert "detail" in r.json()
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "ready" and health.json()["refused"] is None
        version = client.get("/version").json()
        assert (version["week"], version["version"], version["customers"]) == (WEEK, body["version"], len(ids))


def test_503_before_any_snapshot_then_ready_once_published(tmp_path):
    app = create_app(tmp_path, poll_s=0.02)
    with TestClient(app) as client:
        for url in (f"/recommendations/{'a' * 64}", "/version", "/health"):
            r = client.get(url)
            assert r.status_code == 503, url
            assert "hm-recsys predict" in r.json()["detail"]
        assert client.get("/health").json()["status"] == "not_ready"
        c = content(1)
        S.publish(tmp_path, c)
        deadline = time.monotonic() + 10
        while client.get("/health").status_code != 200:  # picked up by the poller, no restart
            assert time.monotonic() < deadline, "the published snapshot was not picked up"
            time.sleep(0.02)
        assert client.get(f"/recommendations/{customer_ids(c)[0]}").json()["articles"] == expected(c, 0)


def _point_at(root, pointer: str) -> None:
    (root / S.POINTER).write_text(pointer + "\n")


def _unchecked(root, c: S.SnapshotContent):
    """Write a snapshot the way a buggy or foreign writer would: hash and manifest consistent, content not
    checked (``publish`` refuses such content)."""
    path, version, _, _ = S._write_snapshot(root, c, check=False)
    return path, version


def _resign(folder):
    """Rename a hand-modified snapshot folder (and its manifest) after the hash of what it now holds: the
    hash is consistent, so only the other checks of ``load_snapshot`` can refuse it. Returns the version."""
    manifest = json.loads((folder / S.MANIFEST).read_text())
    info = {k: v for k, v in manifest.items() if k != "version"}
    version = S._content_hash(info, [(f, [(folder / f).read_bytes()]) for f in S.FILES])
    (folder / S.MANIFEST).write_text(json.dumps({**info, "version": version}))
    folder.rename(folder.with_name(version))
    return version


def _bad(kind: str) -> S.SnapshotContent:
    """Content that breaks one invariant."""
    c = content(11)
    a = {k: v.copy() for k, v in c.arrays.items()}
    if kind == "duplicate":
        a["recommendations.npy"][9, 1] = a["recommendations.npy"][9, 0]
    elif kind == "unknown_article":
        a["recommendations.npy"][4, 3] = c.info["n_articles"]
    elif kind == "negative_article":
        a["recommendations.npy"][4, 3] = -1
    elif kind == "fallback_duplicate":
        a["fallback.npy"][2, 5] = a["fallback.npy"][2, 0]
    elif kind == "unsorted_ids":
        a["customer_ids.npy"][[3, 4]] = a["customer_ids.npy"][[4, 3]]
    elif kind == "repeated_id":
        a["customer_ids.npy"][4] = a["customer_ids.npy"][3]
    elif kind == "not_a_permutation":
        a["customer_rows.npy"][0] = a["customer_rows.npy"][1]
    elif kind == "int64_rows":
        a["recommendations.npy"] = a["recommendations.npy"].astype(np.int64)
    elif kind == "wrong_shape":
        a["recommendations.npy"] = a["recommendations.npy"][:-1]
    elif kind == "non_ascii_article":
        a["article_ids.npy"][0] = "é".encode() + a["article_ids.npy"][0][2:]
    return S.SnapshotContent(c.week, a, c.info)


BAD = {"duplicate": "row 9 repeats an article", "unknown_article": "article position outside",
       "negative_article": "article position outside", "fallback_duplicate": "fallback.npy: row 2 repeats",
       "unsorted_ids": "not sorted and unique", "repeated_id": "not sorted and unique",
       "not_a_permutation": "not a permutation", "int64_rows": "expected shape", "wrong_shape": "expected shape",
       "non_ascii_article": "not ASCII"}


@pytest.mark.parametrize("kind", BAD)
def test_publish_refuses_content_that_breaks_an_invariant_and_load_refuses_it_too(tmp_path, kind):
    """``publish`` checks before anything is published (current and the folder are as they were); a folder
    with the same content written past ``publish``, its hash consistent, is refused by ``load_snapshot``."""
    root, scratch = tmp_path / "serving", tmp_path / "scratch"
    good = S.publish(root, content(1))
    with pytest.raises(S.SnapshotError, match=BAD[kind]):
        S.publish(root, _bad(kind))
    assert S.read_pointer(root) == f"{WEEK}/{good.version}"
    assert sorted(p.name for p in (root / WEEK).iterdir()) == [good.version]  # nothing else, no staging leftover
    with pytest.raises(S.SnapshotError, match=BAD[kind]):
        S.check_content(_bad(kind))
    path, _ = _unchecked(scratch, _bad(kind))
    with pytest.raises(S.SnapshotError, match=BAD[kind]):
        S.load_snapshot(path)


@pytest.mark.parametrize("name", [*S.FILES, S.MANIFEST])
@pytest.mark.parametrize("how", ["flip_first", "flip_last", "truncate", "append", "empty"])
def test_any_changed_byte_of_any_file_is_refused(tmp_path, name, how):
    """Whatever byte of whichever file changes (the .npy header, the data, the manifest's fields), or a file
    cut short (a half copy), longer, or empty: ``load_snapshot`` refuses the folder, the hash first."""
    pub = S.publish(tmp_path, content(1))
    f = pub.path / name
    raw = bytearray(f.read_bytes())
    if name == S.MANIFEST:  # a content field, not the version (that would only misname the folder)
        at = raw.index(b'"n_articles": ') + len(b'"n_articles": ') if how == "flip_first" else raw.index(b"seed") + 1
        raw[at] ^= 0x01
    elif how == "flip_first":
        raw[8] ^= 0x01  # the header's length
    elif how == "flip_last":
        raw[-1] ^= 0x01
    elif how == "truncate":
        del raw[len(raw) // 2:]
    elif how == "append":
        raw += b"\0"
    else:
        raw = bytearray()
    f.write_bytes(bytes(raw))
    with pytest.raises(S.SnapshotError, match="does not match the version|unreadable|missing field"):
        S.load_snapshot(pub.path)


@pytest.mark.parametrize("how", ["truncate", "append", "bad_header", "object_dtype"])
def test_a_malformed_array_with_a_consistent_hash_is_refused(tmp_path, how):
    """Past the hash (a writer that hashed what it wrote wrong), the arrays themselves are parsed strictly:
    the data must fill the file exactly and hold no Python objects."""
    path, _ = _unchecked(tmp_path, content(1))
    f = path / "recommendations.npy"
    raw = f.read_bytes()
    if how == "truncate":
        raw = raw[:-4]
    elif how == "append":
        raw += b"\0" * 4
    elif how == "bad_header":
        raw = b"\x93NUMPY\x07\x00" + raw[8:]
    else:
        buf = io.BytesIO()
        np.save(buf, np.array([None] * 3, dtype=object), allow_pickle=True)
        raw = buf.getvalue()
    f.write_bytes(raw)
    version = _resign(path)
    with pytest.raises(S.SnapshotError, match="unreadable array"):
        S.load_snapshot(path.with_name(version))


def test_a_corrupt_or_half_written_snapshot_is_refused_and_the_previous_keeps_serving(tmp_path_factory):
    tmp_path, scratch = tmp_path_factory.mktemp("serving"), tmp_path_factory.mktemp("scratch")
    good = content(1)
    pg = S.publish(tmp_path, good)
    app = create_app(tmp_path, poll=False)
    holder = app.state.holder
    assert holder.poll_once()
    cid = customer_ids(good)[5]

    def check_refused(why: str):
        assert not holder.poll_once()
        with TestClient(app) as client:
            health = client.get("/health").json()
            assert health["status"] == "ready" and health["version"] == pg.version
            assert why in health["refused"]["reason"], health["refused"]
            body = client.get(f"/recommendations/{cid}").json()
            assert (body["version"], body["articles"]) == (pg.version, expected(good, 5))

    # 1. a published snapshot modified on disk afterwards: its bytes no longer hash to its version
    bad = S.publish(scratch / "bad", content(2))
    target = tmp_path / WEEK / bad.version
    target.mkdir()
    for f in bad.path.iterdir():
        (target / f.name).write_bytes(f.read_bytes())
    recs = target / "recommendations.npy"
    raw = bytearray(recs.read_bytes())
    raw[-1] ^= 0xFF
    recs.write_bytes(bytes(raw))
    _point_at(tmp_path, f"{WEEK}/{bad.version}")
    check_refused("does not match the version")
    # 2. half written (copied by hand, interrupted): files missing
    (target / "fallback.npy").unlink()
    holder.refused = None
    check_refused("missing fallback.npy")
    # 3. no manifest at all
    (target / S.MANIFEST).unlink()
    holder.refused = None
    check_refused("no manifest.json")
    # 4. consistent hash, but a row repeats an article (a writer past publish's check): refused by the row check
    with pytest.raises(S.SnapshotError, match="row 9 repeats an article"):  # publish refuses to write it
        S.publish(tmp_path, content(3, duplicate_row=9))
    dup_path, dup_version = _unchecked(scratch / "dup", content(3, duplicate_row=9))
    shutil.copytree(dup_path, tmp_path / WEEK / dup_version)
    _point_at(tmp_path, f"{WEEK}/{dup_version}")
    check_refused("row 9 repeats an article")
    # 4b. a file cut short (a half copy): the hash no longer matches
    cut = tmp_path / WEEK / dup_version / "customer_ids.npy"
    cut.write_bytes(cut.read_bytes()[:1000])
    holder.refused = None
    check_refused("does not match the version")
    # a refused pointer is not reloaded every tick, only when current changes (or retry_s later)
    assert not holder.poll_once()
    # 5. a good new snapshot: served, the refusal cleared
    fresh = S.publish(tmp_path, content(4))
    assert holder.poll_once() and holder.snapshot.version == fresh.version and holder.refused is None


def test_the_switch_is_atomic_under_concurrent_requests(tmp_path, tmp_path_factory):
    """Threads request while new snapshots are published, and one corrupt snapshot is pointed at among
    them: every answer is exactly one good version's answer, the corrupt one never serves."""
    versions = {}
    first = content(0)
    versions[S.publish(tmp_path, first).version] = first
    ids = customer_ids(first)
    app = create_app(tmp_path, poll_s=0.01)
    answers, errors, stop = [], [], threading.Event()

    def hammer(client, seed):
        rnd = random.Random(seed)
        while not stop.is_set():
            row, n = rnd.randrange(len(ids)), rnd.randint(1, S.K)
            r = client.get(f"/recommendations/{ids[row]}", params={"n": n})
            if r.status_code != 200:
                errors.append((r.status_code, r.text))
            else:
                answers.append((row, n, r.json()))

    with TestClient(app) as client:
        while client.get("/health").status_code != 200:
            time.sleep(0.01)
        threads = [threading.Thread(target=hammer, args=(client, s)) for s in range(6)]
        for t in threads:
            t.start()
        try:
            for seed in range(1, 6):
                time.sleep(0.3)
                c = content(seed)
                versions[S.publish(tmp_path, c).version] = c
                if seed == 3:  # a snapshot corrupted after it was written: refused while the others serve
                    path, corrupt = _unchecked(tmp_path_factory.mktemp("scratch"), content(99))
                    shutil.copytree(path, tmp_path / WEEK / corrupt)
                    recs = tmp_path / WEEK / corrupt / "recommendations.npy"
                    raw = bytearray(recs.read_bytes())
                    raw[-5] ^= 0x10
                    recs.write_bytes(bytes(raw))
                    _point_at(tmp_path, f"{WEEK}/{corrupt}")
                    deadline = time.monotonic() + 10
                    while (app.state.holder.refused or {}).get("snapshot") != f"{WEEK}/{corrupt}":
                        assert time.monotonic() < deadline, "the corrupt snapshot was not refused"
                        time.sleep(0.01)
                    time.sleep(0.2)
            deadline = time.monotonic() + 10
            while app.state.holder.snapshot.version != list(versions)[-1]:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            time.sleep(0.2)
        finally:
            stop.set()
            for t in threads:
                t.join()
    assert errors == []
    seen = {body["version"] for _, _, body in answers}
    assert len(answers) > 100 and len(seen) >= 3 and seen <= set(versions), (len(answers), seen)
    for row, n, body in answers:
        assert body["articles"] == expected(versions[body["version"]], row, n), body
    assert app.state.holder.switches == len(versions)


@pytest.mark.slow
def test_the_pipeline_publishes_the_production_snapshot_and_it_serves(backtested):
    """The backtest's automation built serving_snapshot for the production week from its final.csv."""
    import polars as pl

    from hm_recsys.tables import load_tables

    paths, _ = backtested
    root = S.serving_root(paths.root)
    week, version = S.read_pointer(root).split("/")
    final = pl.read_csv(paths.submission(week, "final"), schema={"customer_id": pl.String, "prediction": pl.String})
    manifest = json.loads((root / week / version / S.MANIFEST).read_text())
    assert manifest["n_customers"] == final.height == load_tables(paths.tables).n_customers
    app = create_app(root, poll=False)
    assert app.state.holder.poll_once()
    with TestClient(app) as client:
        for customer_id, prediction in final.sample(20, seed=0).iter_rows():
            body = client.get(f"/recommendations/{customer_id}").json()
            assert (body["articles"], body["source"], body["week"], body["version"]) == (prediction.split(" "), "personal", week, version)
        assert client.get("/health").json()["status"] == "ready"
