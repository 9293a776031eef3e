"""logger=mlflow: an MLflow run per job through `MlflowClient` (the `mlflow-skinny` client is enough).

Offline by default: a local SQLite store `<sweep or run dir>/mlflow.db` (MLflow's default store since
3.7), browsed with `mlflow ui --backend-store-uri sqlite:///.../mlflow.db`. `logger.tracking_uri`
points at a server instead. A sweep is one MLflow experiment, named after its sweep dir.
"""

from __future__ import annotations

import os
import time
from typing import Any

from optbench.logger import RunInfo, Tracker

BATCH = 1000  # MLflow's limit of metrics per log_batch call
PARAM_BATCH = 100  # ... and of params
PARAM_LENGTH = 6000  # the longest param value MLflow stores
STATUS = {"completed": "FINISHED", "interrupted": "KILLED"}  # anything else (diverged, failed) is FAILED
# MLflow retries a request to a server 7 times with exponential backoff and a 120 s timeout: a server gone
# mid-run would stall training for minutes per call. optbench's own bound (unless the user set these): at
# most ~50 s once, after which the tracker is off and training goes on.
HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}


class MlflowTracker(Tracker):
    """Params (the flattened config), tags, metrics with `step` = iteration, summary metrics, run status."""

    kind = "mlflow"

    def _open(self, info: RunInfo) -> None:
        from mlflow import MlflowClient
        from mlflow.entities import Param

        uri = self.options.get("tracking_uri") or f"sqlite:///{info.root / 'mlflow.db'}"
        for name, value in HTTP_LIMITS.items():
            os.environ.setdefault(name, value)
        self.client = MlflowClient(tracking_uri=uri)
        name = self.options.get("experiment") or info.group or "optbench"
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            local = not self.options.get("tracking_uri")
            try:  # artifacts beside the store, not in the current folder (MLflow's default)
                experiment_id = self.client.create_experiment(
                    name, artifact_location=(info.root / "mlartifacts").as_uri() if local else None
                )
            except Exception:  # another job of the sweep created it first
                experiment = self.client.get_experiment_by_name(name)
                if experiment is None:
                    raise
                experiment_id = experiment.experiment_id
        else:
            experiment_id = experiment.experiment_id
        tags = {**info.tags, "run_dir": str(info.run_dir)}
        self.run_id = self.client.create_run(experiment_id, run_name=info.name, tags=tags).info.run_id
        params = [Param(key, str(value)[:PARAM_LENGTH]) for key, value in info.params.items()]
        for start in range(0, len(params), PARAM_BATCH):
            self.client.log_batch(self.run_id, params=params[start : start + PARAM_BATCH])

    def _log(self, metrics: list[Any]) -> None:
        for start in range(0, len(metrics), BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[start : start + BATCH])

    def _rows(self, iterations: list[int], columns: dict[str, list[float | None]]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._log(
            [
                Metric(key, value, now, iteration)
                for key, values in columns.items()
                for iteration, value in zip(iterations, values)
                if value is not None
            ]
        )

    def _finish(self, summary: dict[str, Any], metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._log([Metric(f"summary/{key}", value, now, 0) for key, value in metrics.items()])
        self.client.set_tag(self.run_id, "status", str(summary.get("status")))
        self.client.set_terminated(self.run_id, status=STATUS.get(summary.get("status"), "FAILED"))
