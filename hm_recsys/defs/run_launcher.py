"""Dagster's default run launcher, plus the health check its run monitoring needs.

The default launcher starts each run in a process of the code server, which marks the run failed if that
process dies. Nothing notices when the code server itself is gone (its daemon or command was killed):
the run stays STARTED for ever and automation never rebuilds its partitions. Here run monitoring asks
the server that launched the run whether it still executes it; once it has said no (or been unreachable)
for ``GRACE_S``, the run is reported failed, its pool slots are freed and run retries launch it again.

Why private imports: ``CheckRunHealthResult``/``WorkerStatus`` (the run monitoring contract), the
gRPC request type and its unreachable error have no public export in dagster 1.13; the launcher is named in ``dagster.yaml``.
"""

from __future__ import annotations

import time

import dagster as dg
from dagster._core.errors import DagsterUserCodeUnreachableError
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus
from dagster._grpc.types import CanCancelExecutionRequest, CanCancelExecutionResult
from dagster_shared.serdes import deserialize_value

GRACE_S = 30.0  # a busy 2-core machine can delay a gRPC answer; one miss is not a death
TIMEOUT_S = 10


class MonitoredRunLauncher(dg.DefaultRunLauncher):
    def __init__(self, inst_data=None):
        super().__init__(inst_data=inst_data)
        self._lost_since: dict[str, float] = {}

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def _executing(self, run: dg.DagsterRun) -> bool | None:
        """True/False: the launching server runs it or not (or is gone); None: cannot tell."""
        client = self._get_grpc_client_for_termination(run.run_id)
        if client is None:
            return None
        try:
            reply = client.can_cancel_execution(CanCancelExecutionRequest(run_id=run.run_id), timeout=TIMEOUT_S)
        except DagsterUserCodeUnreachableError:
            return False
        except Exception:  # noqa: BLE001 -- a slow or odd answer is not evidence of death
            return None
        return deserialize_value(reply, CanCancelExecutionResult).can_cancel

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        if self._executing(run) is not False:
            self._lost_since.pop(run.run_id, None)
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        lost = time.monotonic() - self._lost_since.setdefault(run.run_id, time.monotonic())
        if lost < GRACE_S:
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        self._lost_since.pop(run.run_id, None)
        return CheckRunHealthResult(WorkerStatus.FAILED,
                                    f"the code server that launched the run has not run it for {lost:.0f}s (killed?)")
