"""Experiment trackers (the `logger` config group): TensorBoard, MLflow, Weights & Biases.

A tracker receives exactly the rows written to train.csv, test.csv and valid.csv, when they are
written (at each flush, from the recorder's buffers: no per-step host sync), plus the composed config
as parameters, tags, and the final summary. The CSVs stay the record: a tracker that fails (a server
gone, a full disk) warns once and is switched off for the rest of the run; training goes on.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from optbench.config.compose import flatten, override_key
from optbench.config.fingerprint import NON_RESULT_KEYS
from optbench.errors import OptbenchError

log = logging.getLogger(__name__)

# logger=<kind>: the package it needs, the extra that installs it and its module here all bear the kind's name
KINDS = ("tensorboard", "mlflow", "wandb")
# summary.json fields a tracker receives as the run's final numbers (when present and numeric)
SUMMARY_METRICS = (
    "final_test_accuracy",
    "best_test_accuracy",
    "best_test_iteration",
    "final_test_loss",
    "final_train_loss",
    "final_valid_accuracy",
    "final_valid_loss",
    "iterations_run",
    "reached_target_at",
    "train_seconds",
    "iterations_per_second",
)
TAGS = ("task", "optimizer", "seed")


@dataclass
class RunInfo:
    """Who a tracker run is: where its files are, the group (sweep) it belongs to, its name, params and tags."""

    run_dir: Path
    root: Path  # the sweep dir for a job of a sweep, else the run dir: local tracker stores go here
    name: str  # the job's place in its sweep and its overrides, e.g. `3_optimizer=adam,seed=1`
    group: str | None  # the sweep (its dir), or None for a single run
    params: dict[str, Any] = field(default_factory=dict)  # the composed config, flattened (`optimizer.lr`)
    tags: dict[str, str] = field(default_factory=dict)  # task, optimizer, seed, sweep


def final_metrics(summary: dict[str, Any], seconds_at: dict[int, float]) -> dict[str, float]:
    """The summary's final numbers, and the training seconds to the target (from test.csv's rows)."""
    metrics = {
        key: float(summary[key])
        for key in SUMMARY_METRICS
        if isinstance(summary.get(key), (int, float)) and not isinstance(summary.get(key), bool)
    }
    reached = summary.get("reached_target_at")
    if reached in seconds_at:
        metrics["seconds_to_target"] = seconds_at[reached]
    return metrics


class Tracker:
    """One tracker run: a backend implements `_open`, `_rows` and `_finish`; this class never lets
    the backend's failures reach training: the first one is logged once and the tracker goes quiet."""

    kind = "?"

    def __init__(self, kind: str | None = None, **options: Any) -> None:
        """`options`: the logger node's settings (`logger.log_dir`, ...); `kind` is its name, `self.kind`."""
        self.options = options
        self.failed = False
        self.seconds_at: dict[int, float] = {}  # test.csv's training seconds by iteration

    def _guard(self, doing: str, method: Any, *args: Any) -> None:
        if self.failed:
            return
        try:
            method(*args)
        except Exception as exc:  # any failure of a side service: warn once, keep training
            self.failed = True
            log.warning(
                "logger=%s failed while %s (%s: %s). Training goes on without it: train.csv, test.csv and "
                "summary.json hold every row, and `optbench export %s RUN_DIR` can replay them later.",
                self.kind,
                doing,
                type(exc).__name__,
                exc,
                self.kind,
            )

    def open(self, info: RunInfo) -> None:
        """Start the tracker run."""
        self.info = info
        self._guard("starting its run", self._open, info)

    def rows(self, split: str, iterations: Sequence[int], columns: dict[str, Sequence[Any]]) -> None:
        """Log the rows just written to `split`.csv (train, test or valid): one value per iteration and column."""
        numeric = {f"{split}/{name}": [_number(v) for v in values] for name, values in columns.items()}
        if split == "test":
            self.seconds_at.update((i, s) for i, s in zip(iterations, numeric.get("test/seconds", ())) if s is not None)
        self._guard(f"logging {split} rows", self._rows, list(iterations), numeric)

    def finish(self, summary: dict[str, Any]) -> None:
        """Log the final summary and end the tracker run with the run's status."""
        self._guard("logging the summary", self._finish, summary, final_metrics(summary, self.seconds_at))

    # backends ---------------------------------------------------------------------------------------
    def _open(self, info: RunInfo) -> None:
        raise NotImplementedError

    def _rows(self, iterations: list[int], columns: dict[str, list[float | None]]) -> None:
        raise NotImplementedError

    def _finish(self, summary: dict[str, Any], metrics: dict[str, float]) -> None:
        raise NotImplementedError


def _number(value: Any) -> float | None:
    """A CSV cell as a finite float, or None (an empty accuracy of a regression task)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def require_tracker(kind: str) -> None:
    """Nothing for logger=none; for a tracker, a clear error when its package is not installed (found, not
    imported: the package loads when the tracker opens its run)."""
    if kind == "none":
        return
    if importlib.util.find_spec(kind) is None:
        raise OptbenchError(
            f"logger={kind} needs the {kind} package, which is not installed. Install "
            f"it with: pip install 'optbench[{kind}]' (or use logger=none: the CSVs are always "
            "written)."
        )


def build_tracker(node: DictConfig | None) -> Tracker | None:
    """The tracker class the `logger` node names (`_target_`, checked by `optbench.config.validation`), built
    with the node's settings; None for logger=none."""
    if node is None or node.get("_target_") is None:
        return None
    require_tracker(str(node.kind))
    return instantiate(node, _convert_="all")


def distinguishing(overrides: Sequence[str]) -> str:
    """A job's overrides that can change its numbers, joined (`optimizer=adam,seed=1`): its name in a tracker."""
    return ",".join(
        o
        for o in overrides
        if override_key(o) not in NON_RESULT_KEYS and not override_key(o).startswith(("logger", "hydra"))
    )


def run_info(
    cfg: DictConfig, run_dir: Path, summary: dict[str, Any], sweep_dir: Path | None, overrides: Sequence[str] = ()
) -> RunInfo:
    """The `RunInfo` of a run in `run_dir` (a job of the sweep in `sweep_dir`, or a single run when None)."""
    run_dir = run_dir.resolve()
    container = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"]), resolve=True)
    if sweep_dir is not None:
        sweep_dir = sweep_dir.resolve()
        place = run_dir.relative_to(sweep_dir).as_posix() if run_dir.is_relative_to(sweep_dir) else run_dir.name
    else:
        place = run_dir.name
    name = f"{place}_{distinguishing(overrides)}" if distinguishing(overrides) else place
    tags = {key: str(summary.get(key)) for key in TAGS if summary.get(key) is not None}
    if sweep_dir is not None:
        tags["sweep"] = str(sweep_dir)
    return RunInfo(
        run_dir,
        sweep_dir or run_dir,
        name.replace("/", "-"),
        str(sweep_dir) if sweep_dir else None,
        flatten(container),
        tags,
    )
