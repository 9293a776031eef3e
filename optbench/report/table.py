"""The summary table: one row per run or seed group, every number computed from the runs' files."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from omegaconf import OmegaConf
from tabulate import tabulate

from optbench.report.groups import Group

# Hyper-parameters worth a column's space, in this order; zero/false ones are left out except lr.
KEY_HYPERPARAMETERS = ("lr", "momentum", "nesterov", "betas", "alpha", "rho", "weight_decay")
THRESHOLDS = (0.95, 0.97)


def hyperparameters(group: Group) -> str:
    """`lr=0.1 momentum=0.9`-style summary of the group's optimizer settings."""
    node = OmegaConf.select(group.runs[0].config, "optimizer") if group.runs else None
    if node is None:
        return ""
    values = OmegaConf.to_container(node)
    shown = []
    for key in KEY_HYPERPARAMETERS:
        value = values.get(key)
        if value is not None and (key == "lr" or value not in (0, False)):
            shown.append(f"{key}={value}".replace(", ", ","))
    return " ".join(shown)


def first_reaching(test: pd.DataFrame, threshold: float) -> float:
    """First evaluated iteration with test accuracy >= threshold (NaN if never)."""
    hits = test.iteration[test.accuracy >= threshold]
    return float(hits.iloc[0]) if len(hits) else math.nan


def _stats(values: list[float]) -> tuple[float, float]:
    array = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if not len(array):
        return math.nan, math.nan
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def summary_table(groups: list[Group], window: int) -> pd.DataFrame:
    """The summary as a DataFrame (accuracies in %), sorted by final test accuracy, best first."""
    rows = []
    for group in groups:
        runs = group.runs
        tested = [run for run in runs if not run.test.empty]
        row = {
            "label": group.label,
            "optimizer": runs[0].choices.get("optimizer", ""),
            "hyperparameters": hyperparameters(group),
            "n": len(runs),
            "seeds": " ".join(str(s) for s in group.seeds),
        }
        for name, values in {
            "final_test_acc": [100 * run.test.accuracy.iloc[-1] for run in tested],
            "best_test_acc": [100 * run.test.accuracy.max() for run in tested],
            "final_train_loss": [run.train.loss.iloc[-window:].mean() for run in runs if run.has_curves],
        }.items():
            row[name], row[f"{name}_std"] = _stats(values)
        for threshold in THRESHOLDS:
            reached = [first_reaching(run.test, threshold) for run in runs]
            # A group reaches a threshold only if every run does; then the mean iteration.
            row[f"iters_to_{round(100 * threshold)}"] = (
                float(np.mean(reached)) if reached and not any(math.isnan(r) for r in reached) else math.nan
            )
        row["iterations_run"] = _stats([len(run.train) for run in runs])[0]
        row["wall_seconds"] = _stats([run.summary.get("wall_seconds", math.nan) for run in runs])[0]
        row["iterations_per_second"] = _stats([run.summary.get("iterations_per_second", math.nan) for run in runs])[0]
        row["status"] = group.status
        rows.append(row)
    table = pd.DataFrame(rows)
    # Best test accuracy first; runs without accuracy (regression) by their final training loss.
    return table.sort_values(["final_test_acc", "final_train_loss"], ascending=[False, True], na_position="last",
                             kind="stable").reset_index(drop=True)


def _with_std(mean: float, std: float, n: int, digits: int) -> str:
    if math.isnan(mean):
        return ""
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


def _number(value: float, digits: int = 0) -> str:
    return "" if math.isnan(value) else f"{value:,.{digits}f}"


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """The table with human column names and mean ± std text, for markdown and the terminal."""
    return pd.DataFrame({
        "run": table.label,
        "hyper-parameters": table.hyperparameters,
        "final test acc %": [_with_std(m, s, n, 2) for m, s, n in zip(table.final_test_acc, table.final_test_acc_std, table.n)],
        "best test acc %": [_with_std(m, s, n, 2) for m, s, n in zip(table.best_test_acc, table.best_test_acc_std, table.n)],
        "final train loss": [_with_std(m, s, n, 4) for m, s, n in zip(table.final_train_loss, table.final_train_loss_std, table.n)],
        "iters to 95%": table.iters_to_95.map(_number),
        "iters to 97%": table.iters_to_97.map(_number),
        "wall s": table.wall_seconds.map(lambda v: _number(v, 1)),
        "it/s": table.iterations_per_second.map(_number),
        "n": table.n,
        "status": table.status,
    })


def to_markdown(table: pd.DataFrame) -> str:
    """GitHub-flavoured markdown of the readable table."""
    return tabulate(readable(table), headers="keys", tablefmt="github", showindex=False, disable_numparse=True)


def to_terminal(table: pd.DataFrame) -> str:
    """A plain text rendering of the readable table for the terminal."""
    return tabulate(readable(table), headers="keys", tablefmt="simple", showindex=False, disable_numparse=True)
