"""optbench from Python (a notebook, a script, your own package): one run, a sweep, a report.

    import optbench
    result = optbench.run("optimizer=adam", "iterations=500")      # in-process, as `optbench ...`
    result.test                                                    # test.csv as a DataFrame
    runs = optbench.sweep("optimizer=sgd,adam", "seed=0,1", "iterations=500")   # as `optbench -m ...`
    optbench.report(runs.sweep_dir)                                # figures and table inline in Jupyter

The overrides are the command line's, composed and checked the same way; a problem raises
`OptbenchError` with the CLI's one-paragraph message.
"""

from __future__ import annotations

import html
import subprocess
import sys
import warnings
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from optbench.errors import OptbenchError
from optbench.rundir.reader import read_metrics
from optbench.rundir.writer import (
    COLUMNS,
    TEST_CSV,
    TRAIN_COLUMNS,
    TRAIN_CSV,
    TRAIN_OPTIONAL,
    VALID_CSV,
    write_text_atomic,
)

if TYPE_CHECKING:
    from optbench.reporting.build import Report

SHOWN = (
    "status",
    "task",
    "optimizer",
    "seed",
    "iterations_run",
    "final_test_accuracy",
    "final_test_loss",
    "reached_target_at",
    "train_seconds",
)  # what a Result shows in a notebook


def _shown(summaries: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per summary: the fields a notebook shows first."""
    return pd.DataFrame([{key: summary.get(key) for key in SHOWN} for summary in summaries])


def _table_html(summaries: list[dict[str, Any]]) -> str:
    """The shown fields as an HTML table (pandas escapes every cell)."""
    return _shown(summaries).to_html(index=False, na_rep="")


@dataclass(frozen=True)
class Result:
    """One finished run: its summary.json as a dict and its CSVs as DataFrames, read from `out_dir`."""

    out_dir: Path
    summary: dict[str, Any]

    @classmethod
    def load(cls, out_dir: Path) -> Result:
        """The run whose files are in `out_dir`."""
        from optbench.rundir.summary import load_summary

        return cls(Path(out_dir), load_summary(Path(out_dir)))

    def _metrics(self, name: str, columns: tuple[str, ...], optional: tuple[str, ...]) -> pd.DataFrame:
        """A CSV of the run as the reader reads it; what it had to drop (a torn or damaged tail) is warned about."""
        problems: list[str] = []
        frame = read_metrics(self.out_dir / name, problems, columns, optional)
        for problem in problems:
            warnings.warn(f"{self.out_dir}: {problem}", stacklevel=3)
        return frame

    @property
    def train(self) -> pd.DataFrame:
        """train.csv: one row per iteration."""
        return self._metrics(TRAIN_CSV, TRAIN_COLUMNS, TRAIN_OPTIONAL)

    @property
    def test(self) -> pd.DataFrame:
        """test.csv: one row per evaluation."""
        return self._metrics(TEST_CSV, COLUMNS, ("seconds",))

    @property
    def valid(self) -> pd.DataFrame | None:
        """valid.csv, when the run held out a validation split."""
        return self._metrics(VALID_CSV, COLUMNS, ("seconds",)) if (self.out_dir / VALID_CSV).exists() else None

    def __repr__(self) -> str:
        shown = ", ".join(f"{key}={self.summary.get(key)!r}" for key in ("status", "task", "optimizer", "seed"))
        return f"Result('{self.out_dir}', {shown})"

    def _repr_html_(self) -> str:
        return f"<p>optbench run in <code>{html.escape(str(self.out_dir))}</code></p>{_table_html([self.summary])}"


@dataclass(frozen=True)
class Sweep:
    """A finished sweep: its dir and every run in it (a tune sweep's stage-2 runs; its trials are in tuning.csv)."""

    sweep_dir: Path
    results: list[Result]

    @property
    def table(self) -> pd.DataFrame:
        """One row per run: the summary fields a notebook shows first."""
        return _shown([r.summary for r in self.results]).assign(out_dir=[str(r.out_dir) for r in self.results])

    def __repr__(self) -> str:
        return f"Sweep('{self.sweep_dir}', {len(self.results)} runs)"

    def _repr_html_(self) -> str:
        return (
            f"<p>optbench sweep of {len(self.results)} runs in <code>{html.escape(str(self.sweep_dir))}</code></p>"
            f"{_table_html([r.summary for r in self.results])}"
        )


def _new_dir(base: str) -> Path:
    """A fresh `base/DATE/TIME` dir, as Hydra names its output dirs (with a suffix if that one exists)."""
    stamp = datetime.now()
    folder = Path(base) / stamp.strftime("%Y-%m-%d") / stamp.strftime("%H-%M-%S")
    candidate, n = folder, 1
    while candidate.exists():
        candidate, n = folder.with_name(f"{folder.name}_{n}"), n + 1
    return candidate


def _check_overrides(function: str, overrides: tuple[Any, ...]) -> None:
    """Overrides are command-line words: refuse anything else with one sentence saying what to pass."""
    for override in overrides:
        if not isinstance(override, str):
            raise OptbenchError(
                f"optbench.{function}() takes overrides as strings, as on the command line, e.g. "
                f"optbench.{function}('optimizer=adam', 'iterations=500'); it was given "
                f"{override!r} ({type(override).__name__}). Write each as 'key=value', e.g. 'seed=1'."
            )


def _compose(overrides: tuple[str, ...]) -> DictConfig:
    """The job config, as the CLI composes it; Hydra's composition errors as one OptbenchError."""
    from hydra.errors import HydraException

    from optbench.config.compose import compose

    _check_overrides("run", overrides)
    try:
        return compose(*overrides)
    except HydraException as exc:
        raise OptbenchError(
            f"The overrides {' '.join(overrides) or '(none)'} do not compose: {exc} "
            "`optbench --help` lists the config groups and tasks; `optbench --cfg job ...` "
            "prints what a command line composes to."
        ) from None


def _save_hydra_files(cfg: DictConfig, overrides: tuple[str, ...], out_dir: Path) -> None:
    """`.hydra/config.yaml`, `overrides.yaml` and `hydra.yaml`, as Hydra writes them: reports read them."""
    hydra_dir = out_dir / ".hydra"
    hydra_dir.mkdir(parents=True, exist_ok=True)
    job = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    write_text_atomic(hydra_dir / "config.yaml", OmegaConf.to_yaml(job))
    write_text_atomic(hydra_dir / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(list(overrides))))
    hydra = OmegaConf.create({"hydra": {"runtime": {"choices": OmegaConf.to_container(cfg.hydra.runtime.choices)}}})
    write_text_atomic(hydra_dir / "hydra.yaml", OmegaConf.to_yaml(hydra))


def run(*overrides: str, out_dir: str | Path | None = None) -> Result:
    """Train one run in this process, as `optbench OVERRIDES` does; its files go to `out_dir`
    (default: a new outputs/DATE/TIME). A run that diverges returns normally (its summary says so)."""
    from optbench.config.validation import check_config
    from optbench.job.job import run_job

    cfg = _compose(overrides)
    check_config(cfg)  # a rejected run writes nothing
    directory = Path(out_dir) if out_dir is not None else _new_dir("outputs")
    _save_hydra_files(cfg, overrides, directory)

    run_job(cfg, directory)
    return Result.load(directory)


def sweep(*overrides: str, sweep_dir: str | Path | None = None, quiet: bool = False) -> Sweep:
    """Run `optbench -m OVERRIDES` (any sweeper or launcher: `hydra/launcher=vectorized`,
    `hydra/sweeper=tune`, ...) into `sweep_dir` (default: a new multirun/DATE/TIME) and return its runs.

    It runs in a child process, exactly the command line: Hydra's multirun machinery keeps global state
    that one process cannot safely start twice. Its log lines are printed as they come (`quiet` hides them).
    """
    _check_overrides("sweep", overrides)
    directory = Path(sweep_dir) if sweep_dir is not None else _new_dir("multirun")
    command = [sys.executable, "-m", "optbench", "-m", *overrides, f"hydra.sweep.dir={directory}"]
    tail: deque[str] = deque(maxlen=100)  # room for Hydra's error with its list of options
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        for line in process.stdout:
            tail.append(line.rstrip())
            if not quiet:
                print(line, end="")
    if process.returncode != 0:
        raise OptbenchError(
            f"The sweep `optbench -m {' '.join(overrides)}` stopped with exit status "
            f"{process.returncode}. Its last lines:\n" + "\n".join(tail)
        )
    from optbench.rundir.reader import discover

    return Sweep(directory, [Result.load(path) for path in discover([directory])])


def report(*dirs: str | Path, out_dir: str | Path | None = None) -> Report:
    """Build `optbench report DIRS` (run dirs, sweep dirs, or folders of them) into `out_dir` (default:
    DIR/report for one dir, ./report for several); in Jupyter it displays inline."""
    from optbench.reporting.build import build_report
    from optbench.reporting.cli import default_out_dir

    paths = [Path(d) for d in dirs]
    if not paths:
        raise OptbenchError(
            "optbench.report() needs at least one run or sweep dir, e.g. "
            "optbench.report(result.out_dir) or optbench.report('multirun/2026-11-29/10-00-00')."
        )
    out = Path(out_dir) if out_dir is not None else default_out_dir(paths)
    return build_report(paths, out)
