"""No silent staleness: every asset's ``code_version`` checked against a hash of the source it runs.

Code versions are bumped by hand (``versioning.code_version``). A missed bump would let an artifact
built by old code count as up to date, so ``code_versions.json`` (beside this file, checked in) records
for every materializable asset of the code location its code_version, the module defining it and a
hash of that module's closure: itself plus every ``hm_recsys`` module it imports, transitively
(``hm_recsys.source_hash``: comments, docstrings and formatting do not count). Asset checks are not
listed: each runs inside its asset's op, defined in the same module, so the asset's entry covers it.
Observable source assets (``raw_*``) have no code version: they are re-observed, not cached.

    python -m hm_recsys.defs.code_versions             # check; exit 1 naming what is out of date
    python -m hm_recsys.defs.code_versions --write     # record the current state
    python -m hm_recsys.defs.code_versions --write --outputs-unchanged ASSET [ASSET ...]

``--write`` refuses to record a changed source hash for an asset whose code_version stayed the same:
bump the version, or, when the change cannot alter what the asset writes (a refactor, a log line, a
dependency's change that does not reach it), name the asset after ``--outputs-unchanged``. That
judgement is then in the diff: the entry's ``source_hash`` changes, its ``code_version`` does not and
its ``last_change`` reads ``outputs unchanged (reviewed)``. hm_recsys_tests/test_code_versions.py
runs the check.

The table is computed from the code's own defaults (an empty data folder, no config file), so it does
not depend on who runs it. Known gap: behaviour injected by the composition root
(``hm_recsys/definitions.py``, e.g. the evaluation's list of recommenders) is not in any closure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from hm_recsys.source_hash import NORMALISATION, SourceGraph, combined_hash

TABLE = Path(__file__).with_name("code_versions.json")
COMMAND = "python -m hm_recsys.defs.code_versions --write"
NEW, BUMPED, REVIEWED = "new", "code_version bumped", "outputs unchanged (reviewed)"


@contextlib.contextmanager
def _without_env(*names: str):
    saved = {n: os.environ.pop(n) for n in names if n in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def reference_definitions():
    """The code location as the code alone defines it: an empty data folder, no config file."""
    from hm_recsys.definitions import build_definitions
    from hm_recsys.defs.config import CONFIG_ENV
    from hm_recsys.paths import DataPaths

    with tempfile.TemporaryDirectory() as tmp, _without_env(CONFIG_ENV):
        return build_definitions(DataPaths(Path(tmp)), eval_weeks=1, hold_failed=True)


def asset_sources(defs) -> dict[str, tuple[str | None, str]]:
    """Asset name -> (code_version, module defining its compute function), every materializable asset."""
    graph = defs.resolve_asset_graph()
    out = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        if not node.is_materializable:
            continue
        assets_def = node.assets_def
        fn = assets_def.op.compute_fn
        fn = getattr(fn, "decorated_fn", fn)
        out[key.to_user_string()] = (assets_def.code_versions_by_key.get(key), fn.__module__)
    return out


def compute(assets: dict[str, tuple[str | None, str]], graph: SourceGraph | None = None) -> dict:
    """The table for ``asset_sources``' result, each module hashed through ``graph``."""
    graph = graph or SourceGraph()
    entries, modules = {}, {}
    for name, (version, module) in sorted(assets.items()):
        closure = graph.closure(module)
        hashes = {m: graph.module_hash(m) for m in closure}
        modules.update(hashes)
        entries[name] = {"code_version": version, "module": module, "source_hash": combined_hash(hashes),
                         "last_change": NEW, "closure": closure}
    return {
        "about": "Written by `" + COMMAND + "` (see hm_recsys/defs/code_versions.py); do not edit by hand.",
        "normalisation": NORMALISATION,
        "assets": entries,
        "modules": dict(sorted(modules.items())),
    }


def _changed_modules(old: dict, old_modules: dict, new: dict, new_modules: dict) -> tuple[list[str], list[str]]:
    """(modules of both closures whose code changed, modules that joined or left the closure)."""
    before, after = set(old.get("closure", [])), set(new["closure"])
    changed = [m for m in sorted(before & after) if old_modules.get(m) != new_modules.get(m)]
    return changed, [f"+{m} (newly imported)" for m in sorted(after - before)] + \
        [f"-{m} (no longer imported)" for m in sorted(before - after)]


def compare(recorded: dict, current: dict, outputs_unchanged: Iterable[str] = ()) -> tuple[list[str], list[str], dict]:
    """(unbumped, out_of_date, table to write).

    ``unbumped``: assets whose source hash changed while their code_version did not, and that
    ``outputs_unchanged`` does not name: errors only a bump or a reviewed judgement resolves.
    ``out_of_date``: every other way the recorded table differs from the code (what ``--write`` fixes).
    The table is only to be written when ``unbumped`` is empty.
    """
    reviewed = set(outputs_unchanged)
    old_assets, new_assets = recorded.get("assets", {}), current["assets"]
    old_modules, new_modules = recorded.get("modules", {}), current["modules"]
    unbumped, stale, table = [], [], {**current, "assets": {}}
    if recorded.get("normalisation") != current["normalisation"]:
        stale.append(f"the table was hashed as {recorded.get('normalisation')!r}, the code hashes as {current['normalisation']!r}")
    for name in sorted(reviewed - set(new_assets)):
        unbumped.append(f"--outputs-unchanged {name}: there is no asset {name!r}")
    for name in sorted(set(old_assets) - set(new_assets)):
        stale.append(f"{name}: in the table but no longer defined")
    for name, new in new_assets.items():
        old = old_assets.get(name)
        entry = dict(new)
        if old is None:
            stale.append(f"{name}: new asset (code_version {new['code_version']!r}), not in the table")
        else:
            entry["last_change"] = old.get("last_change", NEW)
            same_version = old.get("code_version") == new["code_version"]
            if old.get("source_hash") != new["source_hash"]:
                code, moved = _changed_modules(old, old_modules, new, new_modules)
                changed = code + moved or ["(same modules and hashes: was the table edited by hand?)"]
                # A closure can only gain or lose a module through an import edited in a module it keeps,
                # so a changed closure with no changed module is a change of the import rules, not of code.
                if not code and same_version:
                    stale.append(f"{name}: its closure changed ({', '.join(changed)}) but none of its modules did")
                    if name in reviewed:
                        unbumped.append(f"--outputs-unchanged {name}: none of its modules changed, there is nothing to judge")
                elif not same_version:
                    entry["last_change"] = BUMPED
                    stale.append(f"{name}: source changed ({', '.join(changed)}) and code_version was bumped "
                                 f"{old.get('code_version')!r} -> {new['code_version']!r}: not recorded yet")
                elif name in reviewed:
                    entry["last_change"] = REVIEWED
                    stale.append(f"{name}: source changed ({', '.join(changed)}), outputs judged unchanged: not recorded yet")
                else:
                    unbumped.append(
                        f"{name}: source changed in {', '.join(changed)} but its code_version is still "
                        f"{new['code_version']!r}. Bump it where the asset is defined ({new['module']}) and run "
                        f"`{COMMAND}`; or, if the change cannot alter what {name} writes, record that judgement "
                        f"with `{COMMAND} --outputs-unchanged {name}`.")
            elif not same_version:
                entry["last_change"] = BUMPED
                stale.append(f"{name}: code_version bumped {old.get('code_version')!r} -> {new['code_version']!r}, "
                             f"the table still records {old.get('code_version')!r}")
            elif name in reviewed:
                unbumped.append(f"--outputs-unchanged {name}: its source did not change, there is nothing to judge")
            elif old != new | {"last_change": entry["last_change"]}:
                stale.append(f"{name}: its entry differs from the code's (module or closure)")
        table["assets"][name] = entry
    if not unbumped and not stale and recorded != table:
        stale.append("the table's layout differs from what --write records")
    return unbumped, stale, table


def dump(table: dict) -> str:
    return json.dumps(table, indent=1, sort_keys=False) + "\n"


def load(path: Path | None = None) -> dict:
    path = path or TABLE
    return json.loads(path.read_text()) if path.exists() else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hm_recsys.defs.code_versions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"record the current state in {TABLE.name}")
    parser.add_argument("--outputs-unchanged", nargs="+", default=[], metavar="ASSET",
                        help="assets whose source changed without a code_version bump because their outputs cannot change")
    args = parser.parse_args(argv)
    if args.outputs_unchanged and not args.write:
        parser.error("--outputs-unchanged only goes with --write")
    current = compute(asset_sources(reference_definitions()))
    unbumped, stale, table = compare(load(), current, args.outputs_unchanged)
    for line in unbumped:
        print(f"ERROR       {line}")
    if not args.write:
        for line in stale:
            print(f"OUT OF DATE {line}")
        if stale:
            print(f"run `{COMMAND}` to record it")
        if not unbumped and not stale:
            print(f"{TABLE.name}: {len(current['assets'])} assets, every code_version matches its source")
        return 1 if unbumped or stale else 0
    if unbumped:
        print(f"{TABLE.name} not written: bump the code_versions above or pass --outputs-unchanged", file=sys.stderr)
        return 1
    for line in stale:
        print(f"recorded    {line}")
    TABLE.write_text(dump(table))
    print(f"{TABLE.name}: {len(table['assets'])} assets written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
