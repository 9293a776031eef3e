"""Find the runs under some paths and read what each wrote, tolerating partial or broken files.

Below both the report and the tuner (which scores trials from their files), so neither imports the other.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf._utils import get_yaml_loader
from omegaconf.errors import OmegaConfBaseException

from optbench.config.validation import check_target
from optbench.errors import OptbenchError
from optbench.rundir.summary import load_summary
from optbench.rundir.writer import (
    COLUMNS,
    DIAGNOSTICS_COLUMNS,
    DIAGNOSTICS_CSV,
    SUMMARY_JSON,
    TEST_CSV,
    TRAIN_COLUMNS,
    TRAIN_CSV,
    TRAIN_OPTIONAL,
    TRAJECTORY_CSV,
    TUNING_CSV,
    TUNING_DIR,
    VALID_CSV,
)
from optbench.tasks import Target


@dataclass
class Run:
    """One run directory: its metrics (possibly partial), summary and Hydra config."""

    path: Path
    status: str
    train: pd.DataFrame
    test: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)
    config: DictConfig = field(default_factory=lambda: OmegaConf.create({}))
    overrides: list[str] = field(default_factory=list)
    choices: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    trajectory: pd.DataFrame | None = None  # iteration,x,y of a 2-D task
    valid: pd.DataFrame | None = None  # valid.csv, when the run held out a validation split
    diagnostics: pd.DataFrame | None = None  # diagnostics.csv, when the run measured its steps

    @property
    def task(self) -> str:
        """The task's name; for runs older than tasks, their dataset's name."""
        name = OmegaConf.select(self.config, "task.name", default=None, throw_on_missing=False)
        if name is None and "kind" in self.summary:  # before `kind`, summary's `task` meant the kind
            name = self.summary.get("task")
        return str(name or self.summary.get("dataset") or "?")

    @property
    def target(self) -> Target | None:
        """The task's target (from the run's config or summary), or None for runs older than targets."""
        node = OmegaConf.select(self.config, "task.target", default=None, throw_on_missing=False)
        node = OmegaConf.to_container(node) if node is not None else self.summary.get("target")
        try:
            if not isinstance(node, dict):
                return None
            check_target(self.task, node)
            return Target.from_config(node)
        except OptbenchError:
            return None

    @property
    def clean(self) -> bool:
        """True for a completed run whose files were all read without a problem."""
        return self.status == "completed" and not self.problems

    @property
    def has_curves(self) -> bool:
        """True when the run has at least one training row to plot."""
        return not self.train.empty


def discover(paths: list[Path]) -> list[Path]:
    """Every run directory at or below `paths` (one holding a train.csv, or only the summary.json of a run
    whose settings were rejected), in a stable order."""
    found: set[Path] = set()
    for path in paths:
        if not path.exists():
            raise OptbenchError(f"{path} does not exist. Give a run dir, a sweep dir, or a folder holding them.")
        if path.is_file():
            raise OptbenchError(f"{path} is a file; give the run's folder (the one holding {TRAIN_CSV}).")
        found.update(
            run.parent.resolve()
            for name in (TRAIN_CSV, SUMMARY_JSON)
            for run in path.rglob(name)
            if not _tuning_trial(run.parent, path)
        )
    if not found:
        where = ", ".join(str(p) for p in paths)
        raise OptbenchError(
            f"No optbench runs found under {where}: no {TRAIN_CSV} in it or below it. Point "
            "`optbench report` at a run dir (outputs/DATE/TIME) or a sweep dir (multirun/DATE/TIME)."
        )
    return sorted(found, key=lambda p: [(0, int(s), "") if s.isdigit() else (1, 0, s) for s in p.parts])


def _tuning_trial(run_dir: Path, root: Path) -> bool:
    """True for a tune sweep's stage-1 trial (<sweep>/tuning/N beside <sweep>/tuning.csv) found from
    above its sweep: the report covers stage 2, and tuning.csv summarises the trials."""
    for folder in run_dir.relative_to(root).parents:
        if folder.name == TUNING_DIR and (root / folder.parent / TUNING_CSV).exists():
            return True
    return False


def read_metrics(
    path: Path, problems: list[str], columns: tuple[str, ...] = COLUMNS, optional: tuple[str, ...] = ()
) -> pd.DataFrame:
    """An iteration,loss,accuracy CSV (or other `columns`); a torn or damaged tail is dropped and noted in `problems`.

    The trailing `optional` columns may be missing (files written before they existed, or runs that do not
    record them): they read as NaN.
    """
    empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})
    if not path.exists():
        problems.append(f"{path.name} missing")
        return empty
    frame = _parse_csv(path, problems)
    if frame is None:
        return empty
    required = len([c for c in columns if c not in optional])
    if required <= len(frame.columns) < len(columns) and list(frame.columns) == list(columns[: len(frame.columns)]):
        frame = frame.assign(**{c: float("nan") for c in columns[len(frame.columns) :]})
    if list(frame.columns) != list(columns):
        problems.append(f"{path.name} has columns {list(frame.columns)}, expected {list(columns)}")
        return empty
    clean = all(pd.api.types.is_numeric_dtype(dtype) for dtype in frame.dtypes)  # no text where a number goes
    numeric = frame if clean else frame.apply(pd.to_numeric, errors="coerce")
    # A row cut short by a crash parses with NaNs; a non-finite loss is never written. Keep the
    # rows before the first damaged one, so curves stay contiguous. A wholly empty column is a
    # metric the task does not define (accuracy of a regression), not damage. (numpy, not pandas, per
    # row: a report over 10,000 runs reads 20,000 of these files.)
    missing = numeric.isna().to_numpy()
    defined = [i for i, c in enumerate(columns) if c not in optional and not missing[:, i].all()]
    numeric = _before_damage(numeric, missing[:, defined].any(axis=1), path, problems)
    return numeric if numeric.iteration.dtype == np.int64 else numeric.astype({"iteration": "int64"})


def _parse_csv(path: Path, problems: list[str]) -> pd.DataFrame | None:
    """A CSV's rows (a line with too many fields skipped), or None, the problem noted, where it cannot be read."""
    try:
        return pd.read_csv(path, on_bad_lines="skip")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        problems.append(f"{path.name} unreadable ({type(exc).__name__})")
        return None


def _before_damage(frame: pd.DataFrame, damaged: np.ndarray, path: Path, problems: list[str]) -> pd.DataFrame:
    """The rows before the first damaged one: a row `damaged` marks, or one whose iteration does not follow the
    last (a torn tail); the cut is noted in `problems`."""
    damaged = damaged.copy()
    damaged[1:] |= np.diff(frame.iteration.to_numpy()) <= 0
    if not damaged.any():
        return frame
    first = int(damaged.argmax())
    problems.append(f"{path.name} damaged from row {first + 1}: kept {first} rows")
    return frame.iloc[:first].reset_index(drop=True)


@functools.cache
def _yaml_loader() -> type:
    """OmegaConf's YAML rules (`1e-3` is a float, no timestamps) on PyYAML's C parser: a report reads three
    YAML files per run, and OmegaConf.load's pure-Python parser was most of the time over 100 runs (24 ms a
    run against 4 ms)."""
    rules = get_yaml_loader()
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # PyYAML built without libyaml: slower, the same

    class Loader(base):  # type: ignore[misc, valid-type]
        yaml_implicit_resolvers = rules.yaml_implicit_resolvers
        yaml_constructors = {**base.yaml_constructors, **rules.yaml_constructors}

    return Loader


def _read_yaml(path: Path) -> Any:
    """The plain data of a YAML file Hydra wrote, or None where there is none."""
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_yaml_loader()) if path.exists() else None


def load_run(path: Path) -> Run:
    """Read one run dir; whatever is missing or broken is recorded, never raised."""
    problems: list[str] = []
    train = read_metrics(path / TRAIN_CSV, problems, TRAIN_COLUMNS, optional=TRAIN_OPTIONAL)
    test = read_metrics(path / TEST_CSV, problems, optional=("seconds",))
    valid = read_metrics(path / VALID_CSV, problems, optional=("seconds",)) if (path / VALID_CSV).exists() else None
    trajectory = (
        read_metrics(path / TRAJECTORY_CSV, problems, ("iteration", "x", "y"))
        if (path / TRAJECTORY_CSV).exists()
        else None
    )
    summary: dict[str, Any] = {}
    try:
        summary = load_summary(path)
    except FileNotFoundError:
        problems.append(f"{SUMMARY_JSON} missing")
    except ValueError:  # not JSON, or not UTF-8
        problems.append(f"{SUMMARY_JSON} unreadable")
    hydra_dir = path / ".hydra"
    try:
        config = OmegaConf.create(_read_yaml(hydra_dir / "config.yaml") or {})
        overrides = [str(override) for override in _read_yaml(hydra_dir / "overrides.yaml") or []]
        hydra = _read_yaml(hydra_dir / "hydra.yaml") or {}
        choices = dict(((hydra.get("hydra") or {}).get("runtime") or {}).get("choices") or {})
    except (OSError, ValueError, AttributeError, yaml.YAMLError, OmegaConfBaseException) as exc:  # a damaged file
        problems.append(f".hydra unreadable ({type(exc).__name__})")
        config, overrides, choices = OmegaConf.create({}), [], {}
    if not choices.get("optimizer") and summary.get("optimizer"):
        choices["optimizer"] = summary["optimizer"]

    status = summary.get("status", "unreadable" if (path / SUMMARY_JSON).exists() else "incomplete")
    if status == "running":
        status = "incomplete"  # a run still going, or one killed before it could say how it ended
    if status == "completed" and problems:
        status = "damaged"
    diagnostics = read_diagnostics(path / DIAGNOSTICS_CSV, problems) if (path / DIAGNOSTICS_CSV).exists() else None
    return Run(path, status, train, test, summary, config, overrides, choices, problems, trajectory, valid, diagnostics)


def read_diagnostics(path: Path, problems: list[str]) -> pd.DataFrame | None:
    """diagnostics.csv: its fixed columns, then a run's per-parameter ones; a damaged tail is dropped."""
    frame = _parse_csv(path, problems)
    if frame is None:
        return None
    if tuple(frame.columns[: len(DIAGNOSTICS_COLUMNS)]) != DIAGNOSTICS_COLUMNS:
        problems.append(
            f"{path.name} has columns {list(frame.columns)[: len(DIAGNOSTICS_COLUMNS)]}..., expected "
            f"{list(DIAGNOSTICS_COLUMNS)}..."
        )
        return None
    numeric = frame.apply(pd.to_numeric, errors="coerce")
    return _before_damage(numeric, numeric.iteration.isna().to_numpy(), path, problems)


def first_reaching(test: pd.DataFrame, target: Target, clock: str = "iteration") -> float:
    """The `clock` (iteration, or training seconds) of the first evaluation meeting the target (NaN if never)."""
    hits = test[clock][test[target.column].map(target.met).astype(bool)] if len(test) else test[clock]
    return float(hits.iloc[0]) if len(hits) else math.nan
