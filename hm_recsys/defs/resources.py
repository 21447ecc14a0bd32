"""Resources: what varies by deployment (data folder, MLflow server, compute device)."""

from __future__ import annotations

import contextlib
import fcntl
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
    """One MLflow run per Dagster run, shared by all its steps and ended by each step that used it.

    dagster-mlflow's resource is legacy and its end-of-run hook only covers jobs, so a materialization
    from the asset graph would leave runs RUNNING; this resource opens the run by the Dagster run id
    (under a file lock, since steps run in parallel processes) and always ends it.
    """

    tracking_uri: str
    artifact_dir: str
    experiment: str = "hm_recsys"

    @contextlib.contextmanager
    def run(self, context: dg.AssetExecutionContext) -> Iterator[str]:
        import mlflow
        from mlflow.tracking import MlflowClient

        lock = Path(self.artifact_dir).parent / ".mlflow.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        client = MlflowClient(self.tracking_uri)
        with open(lock, "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            exp = client.get_experiment_by_name(self.experiment)
            exp_id = exp.experiment_id if exp else client.create_experiment(
                self.experiment, artifact_location=Path(self.artifact_dir).resolve().as_uri()
            )
            found = client.search_runs([exp_id], filter_string=f"tags.dagster_run_id = '{context.run_id}'")
            if found:
                run_id = found[0].info.run_id
            else:
                tags = {"dagster_run_id": context.run_id, "dagster_job": context.job_name}
                if context.has_partition_key:
                    tags["target_week"] = context.partition_key
                run_id = client.create_run(exp_id, tags=tags, run_name=f"dagster-{context.run_id[:8]}").info.run_id
            fcntl.flock(fh, fcntl.LOCK_UN)
        mlflow.set_tracking_uri(self.tracking_uri)
        status = "FAILED"
        try:
            with mlflow.start_run(run_id=run_id):
                yield run_id
                status = "FINISHED"
        finally:
            client.set_terminated(run_id, status=status)


def build_resources(paths: DataPaths) -> dict:
    return {
        "data": DataResource(data_dir=str(paths.root)),
        "compute": ComputeResource(),
        "mlflow": MlflowTracking(tracking_uri=paths.mlflow_uri, artifact_dir=str(paths.mlflow_artifacts)),
    }
