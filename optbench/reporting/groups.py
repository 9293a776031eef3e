"""Label runs by what differs between them, and group the runs that differ only by seed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from optbench.config.compose import override_key
from optbench.config.fingerprint import NON_RESULT_KEYS
from optbench.rundir.reader import Run
from optbench.tasks import Target

# Keys that never distinguish what was compared within a task: the seed (groups are built over it),
# the task (each task gets its own figures and table rows), and settings that do not change the numbers.
IGNORED_KEYS = {"seed", "task", *NON_RESULT_KEYS}
# A task's best groups that figures draw and pairwise tests compare, at most; the tables list every group.
# A tuned sweep has hundreds of (optimizer, lr) groups: their legend, or their G^2/2 paired tests, would
# swamp the report (and grow with the square of the groups).
TOP_GROUPS = 12


@dataclass
class Group:
    """Runs of one task with the same label (differing at most by seed)."""

    label: str
    runs: list[Run]
    task: str = "?"

    @property
    def curves(self) -> list[Run]:
        """The runs that have training rows to plot."""
        return [run for run in self.runs if run.has_curves]

    @property
    def status(self) -> str:
        """`completed`, or a count of each status when the runs ended differently."""
        counts = Counter(run.status for run in self.runs)
        if len(counts) == 1:
            return next(iter(counts))
        return ", ".join(f"{n} {status}" for status, n in counts.most_common())

    @property
    def target(self) -> Target | None:
        """The task's target, from the first of the group's runs that records one."""
        return next((target for target in (run.target for run in self.runs) if target), None)

    @property
    def seeds(self) -> list:
        """Seeds of the runs, in order."""
        return [run.summary.get("seed", OmegaConf.select(run.config, "seed")) for run in self.runs]


def config_value(run: Run, key: str) -> str:
    """The run's value of a config key (a group's chosen option, or a config value) as text."""
    if key in run.choices:
        return str(run.choices[key])
    value = OmegaConf.select(run.config, key, default=None, throw_on_missing=False)
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value)
    return str(value).replace(" ", "") if isinstance(value, list) else str(value)


def differing_keys(runs: list[Run]) -> list[str]:
    """Config keys (from the runs' overrides, plus the optimizer) whose values differ between runs."""
    keys = ["optimizer"]
    for run in runs:
        for override in run.overrides:
            key = override_key(override)
            if key not in keys and key not in IGNORED_KEYS and not key.startswith("hydra"):
                keys.append(key)
    return [k for k in keys if len({config_value(run, k) for run in runs}) > 1]


def label(run: Run, keys: list[str]) -> str:
    """The run's optimizer, then `key=value` for each differing key (optimizer. prefix dropped)."""
    parts = [run.choices.get("optimizer") or run.summary.get("optimizer") or run.path.name]
    for key in keys:
        if key != "optimizer":
            parts.append(f"{key.removeprefix('optimizer.')}={config_value(run, key)}")
    return " ".join(parts)


def group_runs(runs: list[Run]) -> list[Group]:
    """Group runs by task and label; runs that differ only by seed share a label and so a group."""
    keys = differing_keys(runs)
    groups: dict[tuple[str, str], Group] = {}
    for run in runs:
        name = label(run, keys)
        groups.setdefault((run.task, name), Group(name, [], run.task)).runs.append(run)
    return list(groups.values())


def aligned(runs: list[Run], split: str, column: str, transform=None) -> pd.DataFrame:
    """One column per run of `split`.`column` indexed by iteration (NaN where a run stopped early)."""
    series = {}
    for i, run in enumerate(runs):
        frame = getattr(run, split)
        values = frame[column] if transform is None else transform(frame[column])
        series[i] = pd.Series(values.to_numpy(), index=frame.iteration.to_numpy())
    return pd.DataFrame(series)


def smoothed(runs: list[Run], column: str, window: int) -> pd.DataFrame:
    """`aligned` training curves of `column`, each a moving average over `window` iterations."""
    return aligned(runs, "train", column, lambda s: s.rolling(window, min_periods=1).mean())


def mean_std(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Row-wise mean and sample std over runs (std 0 where only one run has a value)."""
    mean = frame.mean(axis=1)
    std = frame.std(axis=1, ddof=1).fillna(0.0) if frame.shape[1] > 1 else pd.Series(np.zeros(len(frame)), frame.index)
    return mean, std
