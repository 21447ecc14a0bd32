"""Resources: what varies by deployment (data folder, MLflow server, compute device)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import dagster as dg

from hm_recsys.paths import DataPaths
from hm_recsys.tables import Tables, load_tables


class DataResource(dg.ConfigurableResource):
    """The data folder: raw files in, every artifact out."""

    data_dir: str

    @property
    def paths(self) -> DataPaths:
        return DataPaths(Path(self.data_dir).resolve())

    def tables(self) -> Tables:
        return load_tables(self.paths.tables)


class ComputeResource(dg.ConfigurableResource):
    """``auto`` takes CUDA when the machine has it; ``cpu`` forces the CPU path."""

    device: str = "auto"

    def torch_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"


class MlflowTracking(dg.ConfigurableResource):
    """One MLflow run per step of a Dagster run, tagged with the Dagster run id, and always ended.

    dagster-mlflow's resource is legacy and its end-of-run hook only covers jobs, so a materialization
    from the asset graph would leave runs RUNNING; this resource opens the run itself and always ends it.
    Steps run in parallel processes, on several hosts in a cluster, with no lock between them: a shared
    run per Dagster run would need an atomic get-or-create, which MLflow does not offer (runs have random
    ids; a choice among duplicates by start time depends on the hosts' clocks). A run per step needs no
    coordination: the step's own process finds (re-entry, same process) or creates it. The runs of one
    Dagster run are found by the ``dagster_run_id`` tag. The experiment's get-or-create races (two
    first steps create it at once): the loser's "already exists" is caught and the winner's re-read.
    """

    tracking_uri: str
    artifact_dir: str
    experiment: str = "hm_recsys"

    def _experiment_id(self, client) -> str:
        from mlflow.exceptions import MlflowException

        exp = client.get_experiment_by_name(self.experiment)
        if exp:
            return exp.experiment_id
        try:
            return client.create_experiment(self.experiment,
                                            artifact_location=Path(self.artifact_dir).resolve().as_uri())
        except MlflowException:
            exp = client.get_experiment_by_name(self.experiment)  # another step created it first
            if exp is None:
                raise
            return exp.experiment_id

    def _step_run(self, client, exp_id: str, context: dg.AssetExecutionContext) -> str:
        step = context.get_step_execution_context().step.key
        found = client.search_runs(
            [exp_id], filter_string=f"tags.dagster_run_id = '{context.run_id}' and tags.dagster_step = '{step}'")
        if found:  # only this step's own process creates this run: no race
            return found[0].info.run_id
        tags = {"dagster_run_id": context.run_id, "dagster_job": context.job_name, "dagster_step": step}
        if context.has_partition_key:
            tags["target_week"] = context.partition_key
        return client.create_run(exp_id, tags=tags, run_name=f"dagster-{context.run_id[:8]}-{step}").info.run_id

    @contextlib.contextmanager
    def run(self, context: dg.AssetExecutionContext) -> Iterator[str]:
        import mlflow
        from mlflow.tracking import MlflowClient

        Path(self.artifact_dir).mkdir(parents=True, exist_ok=True)
        client = _retrying(lambda: MlflowClient(self.tracking_uri))  # opens (a fresh SQLite file: creates) the store
        exp_id = _retrying(lambda: self._experiment_id(client))
        run_id = _retrying(lambda: self._step_run(client, exp_id, context))
        mlflow.set_tracking_uri(self.tracking_uri)
        status = "FAILED"
        try:
            with mlflow.start_run(run_id=run_id):
                yield run_id
                status = "FINISHED"
        finally:
            client.set_terminated(run_id, status=status)


def _retrying(fn, attempts: int = 5, pause_s: float = 0.5):
    """``fn()``, retried on transient store errors: two processes that first open one fresh SQLite file
    both create its tables (one fails), and SQLite answers "database is locked" to a concurrent writer."""
    import time

    for attempt in range(attempts):
        try:
            return fn()
        except Exception:  # noqa: BLE001 - the last attempt re-raises
            if attempt == attempts - 1:
                raise
            time.sleep(pause_s * (attempt + 1))


def build_resources(paths: DataPaths) -> dict:
    return {
        "data": DataResource(data_dir=str(paths.root)),
        "compute": ComputeResource(),
        "mlflow": MlflowTracking(tracking_uri=paths.mlflow_uri, artifact_dir=str(paths.mlflow_artifacts)),
    }
