"""The thin Dagster layer: assets, resources, partitions, jobs and schedules over the pure modules."""
