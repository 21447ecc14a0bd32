"""Content-based data versions and config-aware code versions.

An asset's data version is a hash of what it wrote, so a re-run that produces the same bytes leaves
downstream assets fresh, and one that changes them marks exactly the dependants stale. Its code
version folds in its config defaults, so editing a default shows the asset as changed in the UI.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import dagster as dg


def hash_files(*paths: str | Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    for path in paths:
        path = Path(path)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 22), b""):
                    h.update(chunk)
    return h.hexdigest()


def data_version(*paths: str | Path) -> dg.DataVersion:
    return dg.DataVersion(hash_files(*paths))


CONFIG_HASH = "config_hash"


def dict_hash(values: dict) -> str:
    return hashlib.blake2b(json.dumps(values, sort_keys=True).encode(), digest_size=4).hexdigest()


def config_hash(config_cls: type[dg.Config] | None) -> str:
    return "noconfig" if config_cls is None else dict_hash(config_cls().model_dump())


def config_metadata(config: dg.Config) -> dict:
    """The run's effective config in the materialization, so the CLI can tell a re-configured asset stale."""
    values = config.model_dump()
    return {"config": dg.MetadataValue.json(values), CONFIG_HASH: dict_hash(values)}


def code_version(base: str, config_cls: type[dg.Config] | None = None) -> str:
    """``base`` is bumped by hand when the logic changes; the suffix follows the config defaults."""
    return f"{base}-{config_hash(config_cls)}"


def describe(fn) -> str:
    """One-line UI description from a function's docstring, with ``param`` names replaced by their defaults."""
    import inspect
    import re

    defaults = {k: p.default for k, p in inspect.signature(fn).parameters.items() if p.default is not inspect.Parameter.empty}
    line = (fn.__doc__ or fn.__name__).strip().splitlines()[0]
    return re.sub(r"``(\w+)``", lambda m: str(defaults.get(m.group(1), m.group(1))), line).replace("``", "")
