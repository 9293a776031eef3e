"""The files a run writes into its output dir: train.csv, test.csv, summary.json (valid.csv, trajectory.csv).

These names and columns are the contract `optbench report` and users' scripts rely on. CSVs are
appended in whole chunks and flushed to disk at every evaluation, so a killed run leaves parseable
files holding every row up to its last flush; summary.json is replaced atomically.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

TRAIN_CSV = "train.csv"
TEST_CSV = "test.csv"
VALID_CSV = "valid.csv"  # with the validation split on: the same columns as test.csv
TRAIN_EVAL_CSV = "train_eval.csv"  # with nanoGPT's estimate (task.eval_iters): the training part's, test.csv's columns
SUMMARY_JSON = "summary.json"
DIAGNOSTICS_CSV = "diagnostics.csv"  # with diagnostics.every: one row per measured step (optbench.diagnostics)
TRAJECTORY_CSV = "trajectory.csv"  # 2-D tasks: the point before training (row 0) and after each step
TUNING_CSV = "tuning.csv"  # a tune sweep's stage-1 trials, in its sweep dir
TUNING_DIR = "tuning"  # stage-1 trials live in <sweep dir>/tuning/<n>/, stage-2 runs in <sweep dir>/<n>/
# test.csv / valid.csv: `seconds` is the training time up to the evaluation, evaluations excluded
# (AlgoPerf's accumulated submission time); files written before it existed lack the column.
COLUMNS = ("iteration", "loss", "accuracy", "seconds")
# train.csv: the lr each step used (the first parameter group's), and the gradient's global norm before
# clipping (only with grad_clip or record_grad_norm on: other runs' files end at lr).
TRAIN_COLUMNS = ("iteration", "loss", "accuracy", "lr", "grad_norm")
# diagnostics.csv: these, then `update_ratio/<parameter>` and `grad_norm/<parameter>` for each parameter tensor.
DIAGNOSTICS_COLUMNS = (
    "iteration",
    "lr",
    "grad_norm",
    "update_norm",
    "update_cosine",
    "sharpness",
    "preconditioned_sharpness",
    "stability_threshold",
    "hessian_products",
)
TRAIN_OPTIONAL = ("lr", "grad_norm")  # trailing columns a train.csv may lack: older files, runs that do not clip


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` via a temp file and rename, never leaving half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def finite_or_none(value: Any) -> Any:
    """`value` with every NaN/inf float (at any depth) replaced by None, so it is valid JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(item) for item in value]
    return value


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write `payload` as strict JSON to `path` atomically (non-finite numbers become null)."""
    write_text_atomic(path, json.dumps(finite_or_none(payload), indent=2, allow_nan=False) + "\n")


class MetricsCSV:
    """An `iteration,<columns>` CSV (by default test.csv's) appended in whole chunks, each flushed to disk."""

    def __init__(self, path: Path, columns: Sequence[str] = COLUMNS) -> None:
        self.path = path
        self.columns = tuple(columns)
        self.mirror: Callable[[range, dict[str, Sequence[Any]]], None] | None = None  # sees every appended chunk
        self._file = open(path, "w", newline="")
        self._write([columns])

    def _write(self, rows: Iterable[Sequence[Any]]) -> None:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        # One write call per chunk, then fsync: a crash leaves whole rows up to the last chunk.
        self._file.write(buffer.getvalue())
        self._file.flush()
        os.fsync(self._file.fileno())

    def append(self, first_iteration: int, *columns: Sequence[Any]) -> None:
        """Append rows for consecutive iterations starting at `first_iteration`, one sequence per column."""
        iterations = range(first_iteration, first_iteration + len(columns[0]))
        self._write(zip(iterations, *columns))
        if self.mirror is not None and len(iterations):
            self.mirror(iterations, dict(zip(self.columns[1:], columns)))

    def close(self) -> None:
        """Close the file (everything is already on disk)."""
        self._file.close()


class RunRecords:
    """The output files of one run, opened in `out_dir` (trajectory.csv once a 2-D task asks for it); train.csv
    has the `grad_norm` column when `grad_norm` is true."""

    def __init__(self, out_dir: Path, grad_norm: bool = False) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir = out_dir
        self.train = MetricsCSV(out_dir / TRAIN_CSV, TRAIN_COLUMNS if grad_norm else TRAIN_COLUMNS[:-1])
        self.test = MetricsCSV(out_dir / TEST_CSV)
        self.valid: MetricsCSV | None = None
        self.train_eval: MetricsCSV | None = None
        self.diagnostics: MetricsCSV | None = None
        self.trajectory: MetricsCSV | None = None
        self._mirror: Callable[[str, range, dict[str, Sequence[Any]]], None] | None = None

    def mirror_to(self, callback: Callable[[str, range, dict[str, Sequence[Any]]], None]) -> None:
        """Hand every chunk appended to train.csv, test.csv and valid.csv, once written, to
        `callback(split, iterations, columns)` too (an experiment tracker)."""
        self._mirror = callback
        files = (
            ("train", self.train),
            ("test", self.test),
            ("valid", self.valid),
            ("train_eval", self.train_eval),
            ("diagnostics", self.diagnostics),
        )
        for split, csv_file in files:
            if csv_file is not None:
                csv_file.mirror = lambda iterations, columns, split=split: callback(split, iterations, columns)

    def open_evaluations(self, splits: tuple[str, ...]) -> None:
        """Start the evaluation files of `splits` besides test.csv (test.csv's columns): valid.csv for `valid`,
        train_eval.csv for `train`."""
        if "valid" in splits:
            self.valid = MetricsCSV(self.out_dir / VALID_CSV)
        if "train" in splits:
            self.train_eval = MetricsCSV(self.out_dir / TRAIN_EVAL_CSV)
        if self._mirror is not None:
            self.mirror_to(self._mirror)

    def evaluation(self, split: str) -> MetricsCSV:
        """The evaluation file of `split` (`test`, `valid` or `train`)."""
        return {"test": self.test, "valid": self.valid, "train": self.train_eval}[split]

    def open_diagnostics(self, columns: Sequence[str]) -> MetricsCSV:
        """Start diagnostics.csv with `columns` (`iteration` first)."""
        self.diagnostics = MetricsCSV(self.out_dir / DIAGNOSTICS_CSV, columns)
        if self._mirror is not None:
            self.mirror_to(self._mirror)
        return self.diagnostics

    def open_trajectory(self, columns: Sequence[str]) -> MetricsCSV:
        """Start trajectory.csv with `iteration` and `columns` (e.g. x, y)."""
        self.trajectory = MetricsCSV(self.out_dir / TRAJECTORY_CSV, ("iteration", *columns))
        return self.trajectory

    @staticmethod
    def write_rejected(out_dir: Path, summary: dict[str, Any]) -> None:
        """A rejected run's only file: its summary.json (`failed`, with the message); no CSV is opened."""
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out_dir / SUMMARY_JSON, summary)

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Replace summary.json with `summary`."""
        write_json_atomic(self.out_dir / SUMMARY_JSON, summary)

    def close(self) -> None:
        """Close the CSVs."""
        for csv_file in (self.train, self.test, self.valid, self.train_eval, self.diagnostics, self.trajectory):
            if csv_file is not None:
                csv_file.close()
