"""The summary table: one row per run or seed group, every number computed from the runs' files."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from omegaconf import OmegaConf
from tabulate import tabulate

from optbench.reporting.diagnostics import last_ratio_to_threshold
from optbench.reporting.groups import TOP_GROUPS, Group, config_value
from optbench.reporting.stats import SIGNIFICANCE, holm, paired_t, summarize
from optbench.rundir.reader import first_reaching

# Hyper-parameters worth a column's space, in this order; zero/false ones are left out except lr.
KEY_HYPERPARAMETERS = ("lr", "momentum", "nesterov", "betas", "alpha", "rho", "weight_decay")


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


def median_time(times: list[float]) -> float:
    """Median time to target over runs, a miss (NaN) counting as infinite; NaN when there are no runs."""
    return float(np.median([math.inf if math.isnan(t) else t for t in times])) if times else math.nan


def _mean(values: list[float | None]) -> float:
    array = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    return float(array.mean()) if len(array) else math.nan


def summary_table(groups: list[Group], window: int) -> pd.DataFrame:
    """The summary as a DataFrame (accuracies in %): tasks in order, and within a task the best
    final value of the task's target metric first (final test accuracy for runs without a target)."""
    rows = []
    for group in groups:
        runs = group.runs
        tested = [run for run in runs if not run.test.empty]
        target = group.target
        row = {
            "task": group.task,
            "label": group.label,
            "optimizer": runs[0].choices.get("optimizer", ""),
            "hyperparameters": hyperparameters(group),
            "n": len(runs),
            "seeds": " ".join(str(s) for s in group.seeds),
            "target": str(target or ""),
        }
        for name, values in {
            "final_test_acc": [100 * run.test.accuracy.iloc[-1] for run in tested],
            "best_test_acc": [100 * run.test.accuracy.max() for run in tested],
            "final_test_loss": [run.test.loss.iloc[-1] for run in tested],
            "final_train_loss": [run.train.loss.iloc[-window:].mean() for run in runs if run.has_curves],
        }.items():
            summary = summarize(values)
            row[name], row[f"{name}_std"] = summary.mean, summary.std
            row[f"{name}_median"], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = (
                summary.median,
                summary.ci_low,
                summary.ci_high,
            )
        reached = [first_reaching(run.test, target) for run in runs] if target else []
        # AlgoPerf's rule: a run that never reached the target took infinitely long, so the median
        # over seeds is infinite once half the runs missed (NaN: the task has no target).
        row["iters_to_target"] = median_time(reached)
        # The same on AlgoPerf's other clock: training seconds (NaN for runs older than test.csv's `seconds`).
        row["seconds_to_target"] = median_time(
            [first_reaching(run.test, target, "seconds") for run in runs]
            if target and all(run.test.seconds.notna().all() for run in runs)
            else []
        )
        row["reached_target"] = (sum(not math.isnan(r) for r in reached) / len(reached)) if reached else math.nan
        row["iterations_run"] = _mean([len(run.train) for run in runs])
        row["wall_seconds"] = _mean([run.summary.get("wall_seconds", math.nan) for run in runs])
        row["iterations_per_second"] = _mean([run.summary.get("iterations_per_second", math.nan) for run in runs])
        row["sharpness_to_threshold"] = last_ratio_to_threshold(group)  # NaN without diagnostics
        row["status"] = group.status
        # Sort key: the final value of the target metric, better first.
        by_loss = target is not None and target.metric == "test_loss"
        row["_rank"] = row["final_test_loss"] if by_loss else -row["final_test_acc"]
        rows.append(row)
    table = pd.DataFrame(rows)
    order = {task: i for i, task in enumerate(dict.fromkeys(table.task))}
    table["_task_order"] = table.task.map(order)
    # Within a task: the target metric, then (runs without accuracy or target) the final training loss.
    return (
        table.sort_values(["_task_order", "_rank", "final_train_loss"], na_position="last", kind="stable")
        .drop(columns=["_task_order", "_rank"])
        .reset_index(drop=True)
    )


def results_table(groups: list[Group], keys: list[str]) -> pd.DataFrame:
    """The tidy table behind results.csv: one row per run and evaluation, with the run's task,
    group, dir, seed, status, the value of every config key in `keys`, and its test metrics."""
    frames = []
    for group in groups:
        for run in group.runs:
            identity = {
                "task": group.task,
                "group": group.label,
                "run": str(run.path),
                "seed": run.summary.get("seed", OmegaConf.select(run.config, "seed")),
                "status": run.status,
                **{key: config_value(run, key) for key in keys},
            }
            test = run.test.rename(columns={"loss": "test_loss", "accuracy": "test_accuracy"})
            if test.empty:  # stopped before its first evaluation: one row, so the run is not lost
                test = pd.DataFrame({"iteration": [math.nan], "test_loss": [math.nan], "test_accuracy": [math.nan]})
            frames.append(test.assign(**identity)[[*identity, "iteration", "test_loss", "test_accuracy"]])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def final_metric(group: Group) -> tuple[str, dict]:
    """The metric groups are compared on (the task's target metric, else accuracy where defined,
    else the test loss) and each run's final value of it, keyed by seed."""
    target = group.target
    tested = [(seed, run) for seed, run in zip(group.seeds, group.runs) if not run.test.empty]
    has_accuracy = any(run.test.accuracy.notna().any() for _, run in tested)
    column = target.column if target else "accuracy" if has_accuracy else "loss"
    return f"test_{column}", {seed: run.test[column].iloc[-1] for seed, run in tested}


def pairwise_table(groups: list[Group]) -> pd.DataFrame:
    """Paired t-tests between every two of a task's groups over their common seeds, Holm-corrected within the
    task; `advantage` > 0 means `first` ended better on the task's metric. Groups come best first: past
    TOP_GROUPS in a task, only its best TOP_GROUPS are compared."""
    rows = []
    for task in dict.fromkeys(group.task for group in groups):
        members = [group for group in groups if group.task == task][:TOP_GROUPS]
        finals = {group.label: final_metric(group) for group in members}
        comparisons = [
            paired_t(
                a.label,
                b.label,
                finals[a.label][1],
                finals[b.label][1],
                higher_is_better=finals[a.label][0] == "test_accuracy",
            )
            for i, a in enumerate(members)
            for b in members[i + 1 :]
        ]
        tested = [c for c in comparisons if not math.isnan(c.p)]
        adjusted = dict(zip(map(id, tested), holm([c.p for c in tested])))
        for c in comparisons:
            p_holm = adjusted.get(id(c), math.nan)
            rows.append(
                {
                    "task": task,
                    "metric": finals[c.first][0],
                    "first": c.first,
                    "second": c.second,
                    "common_seeds": c.n,
                    "advantage": c.advantage,
                    "p": c.p,
                    "p_holm": p_holm,
                    "significant": bool(p_holm < SIGNIFICANCE),
                    "detectable": c.detectable,
                    "seeds_needed": c.seeds_needed,
                }
            )
    columns = ["task", "metric", "first", "second", "common_seeds", "advantage", "p", "p_holm", "significant"]
    return pd.DataFrame(rows, columns=[*columns, "detectable", "seeds_needed"]).astype({"seeds_needed": "Int64"})


def _with_std(mean: float, std: float, n: int, digits: int) -> str:
    if math.isnan(mean):
        return ""
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


def _number(value: float, digits: int = 0) -> str:
    if math.isinf(value):
        return "∞ (missed)"
    return "" if math.isnan(value) else f"{value:,.{digits}f}"


def _interval(low: float, high: float, digits: int) -> str:
    return "" if math.isnan(low) else f"[{low:.{digits}f}, {high:.{digits}f}]"


def _fraction(reached: float, n: int) -> str:
    return "" if math.isnan(reached) else f"{round(reached * n)}/{n}"


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """The table with human column names and mean ± std text, for markdown and the terminal.

    Columns that are blank in every row (accuracy of a 2-D task, the task of a one-task report) are left out.
    """

    def with_std(column: str, digits: int) -> list[str]:
        return [_with_std(m, s, n, digits) for m, s, n in zip(table[column], table[f"{column}_std"], table.n)]

    # the test loss is what a row is judged by where accuracy is undefined or the target is on the loss (a language model)
    by_loss = [
        math.isnan(acc) or str(target).startswith("test_loss")
        for acc, target in zip(table.final_test_acc, table.target)
    ]

    columns = pd.DataFrame(
        {
            "task": table.task if table.task.nunique() > 1 else "",
            "run": table.label,
            "hyper-parameters": table.hyperparameters,
            "final test acc %": with_std("final_test_acc", 2),
            "best test acc %": with_std("best_test_acc", 2),
            "final test loss": [
                _with_std(m, s, n, 4) if loss else ""
                for m, s, n, loss in zip(table.final_test_loss, table.final_test_loss_std, table.n, by_loss)
            ],
            # the bootstrap interval of the mean final accuracy, or of the final test loss where that judges the row
            "final 95% CI": [
                _interval(l_low, l_high, 4) if loss else _interval(a_low, a_high, 2)
                for loss, a_low, a_high, l_low, l_high in zip(
                    by_loss,
                    table.final_test_acc_ci_low,
                    table.final_test_acc_ci_high,
                    table.final_test_loss_ci_low,
                    table.final_test_loss_ci_high,
                )
            ],
            "final train loss": with_std("final_train_loss", 4),
            "target": table.target,
            "median iters to target": table.iters_to_target.map(_number),
            "reached": [_fraction(r, n) for r, n in zip(table.reached_target, table.n)],
            "wall s": table.wall_seconds.map(lambda v: _number(v, 1)),
            "it/s": table.iterations_per_second.map(_number),
            "sharpness / threshold": table.sharpness_to_threshold.map(lambda v: _number(v, 2)),
            "n": table.n,
            "status": table.status,
        }
    )
    return columns.loc[:, [(columns[c].astype(str) != "").any() for c in columns]]


def to_terminal(table: pd.DataFrame) -> str:
    """A plain text rendering of the readable table for the terminal."""
    return tabulate(readable(table), headers="keys", tablefmt="simple", showindex=False, disable_numparse=True)
