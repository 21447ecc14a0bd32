"""Sensors that make ``dagster dev`` react to the data folder with no click.

``raw_files`` observes the raw inputs: a file whose size or mtime moved, and then held still for one
tick (so a copy in progress is not hashed half-way), is hashed, and a new content hash is recorded as
the source asset's data version; automation then rebuilds what depends on it. When the data's week
range or the config file changed, the partitions and code versions in the loaded definitions are out
of date: the sensor asks the webserver (``$HM_DAGSTER_URL``, set by ``hm-recsys ui``) to reload the
code location, so a new week appears as a partition and becomes the production week.

It never requests runs, so Dagster records every tick as skipped; the tick's reason says what it did
(recorded a new version, waits for a file to hold still, reloads), or that nothing changed.
"""

from __future__ import annotations

import json
import os
import threading

import dagster as dg

from hm_recsys.defs.assets.raw import RAW_ASSETS, RAW_FILES, RAW_IMAGES, raw_version
from hm_recsys.defs.resources import DataResource

URL_ENV = "HM_DAGSTER_URL"
LOCATION = "hm_recsys"
INTERVAL_S = 10


def _stamp(data: DataResource, asset: str) -> list:
    """Cheap change detector: size and mtime of the file, or of every file under the images folder."""
    if asset == RAW_IMAGES:
        root = data.paths.images
        if not root.is_dir():
            return []
        stats = [p.stat() for p in root.rglob("*") if p.is_file()]
        return [len(stats), sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0)]
    path = data.paths.raw / RAW_FILES[asset]
    if not path.exists():
        return []
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def loaded_state(data: DataResource, config_file) -> dict:
    """What the definitions were built from: the data's week range and the config file's content."""
    from hm_recsys.defs.partitions import data_date_range, week_keys
    from hm_recsys.ingest import raw_file_version

    return {
        "weeks": list(week_keys(*data_date_range(data.paths.raw))),
        "config": raw_file_version(config_file) if config_file and config_file.exists() else None,
    }


def _reload_location() -> bool:
    url = os.environ.get(URL_ENV)
    if not url:
        return False

    def reload():  # in a thread: the reload replaces the very process this sensor runs in
        from dagster_graphql import DagsterGraphQLClient

        host, _, port = url.removeprefix("http://").partition(":")
        DagsterGraphQLClient(host, port_number=int(port or 80)).reload_repository_location(LOCATION)

    threading.Thread(target=reload, daemon=True).start()
    return True


def build_raw_files_sensor(loaded: dict, config_file) -> dg.SensorDefinition:
    @dg.sensor(name="raw_files", minimum_interval_seconds=INTERVAL_S, default_status=dg.DefaultSensorStatus.RUNNING,
               description="Observes the raw files (content hash) and reloads the code location when the week range or config changes.")
    def raw_files(context: dg.SensorEvaluationContext, data: DataResource) -> dg.SensorResult:
        from hm_recsys.ingest import RawDataError

        cursor = json.loads(context.cursor) if context.cursor else {}
        events = []
        new, same, moving, unreadable = [], [], [], []  # what this tick saw, for its skip reason
        settled = True  # every raw file observed at its current content, with nothing new this tick
        for asset in RAW_ASSETS:
            seen = cursor.get(asset, {})
            stamp = _stamp(data, asset)
            if stamp == seen.get("stamp") and "version" in seen:
                continue
            settled = False
            if stamp != seen.get("pending"):  # moved since the last tick: wait until it holds still
                cursor[asset] = {**seen, "pending": stamp}
                moving.append(asset)
                continue
            try:
                version = raw_version(data, asset)
            except (RawDataError, OSError) as e:
                context.log.warning(str(e))
                unreadable.append(asset)
                continue
            if version != seen.get("version"):
                events.append(dg.AssetObservation(asset_key=asset, tags={"dagster/data_version": version}))
                new.append(asset)
            else:
                same.append(asset)
            cursor[asset] = {"stamp": stamp, "version": version}
        try:
            now = loaded_state(data, config_file)
        except (RawDataError, OSError, ValueError) as e:
            context.log.warning(f"cannot read the data's week range: {e}")
            now = loaded
        said = [f"{what}: {', '.join(assets)}" for what, assets in (
            ("recorded a new content version", new), ("touched, content unchanged", same),
            ("changed, hashed once it holds still for a tick", moving), ("cannot read (see the warning)", unreadable),
        ) if assets]
        if now != loaded and cursor.get("reload_requested_for") != now:
            if not settled:
                # Record the new raw versions first, reload on a later tick. Reloading before let automation
                # see the new week while its tables still looked synced, and build it from the old tables
                # (seen in test_ui: that week's fine-tuned towers missed the new rows).
                context.log.info(f"data weeks or config changed ({loaded} -> {now}): reload once the raw files are observed")
                said.append("data weeks or config changed: reload once the raw files are observed")
            elif _reload_location():
                cursor["reload_requested_for"] = now
                context.log.info(f"data weeks or config changed ({loaded} -> {now}): reloading code location {LOCATION}")
                said.append(f"data weeks or config changed: reloading code location {LOCATION}")
        reason = "; ".join(said) or "no raw file changed since the last tick"
        return dg.SensorResult(asset_events=events, cursor=json.dumps(cursor), skip_reason=reason)

    return raw_files
