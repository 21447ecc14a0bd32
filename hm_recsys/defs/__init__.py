"""The thin Dagster layer: assets, resources, partitions, jobs and schedules over the pure modules."""

from hm_recsys.defs import sqlite_engines

sqlite_engines.install()
