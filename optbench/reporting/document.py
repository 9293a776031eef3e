"""What a report says, independent of its format: sections of tables, notes and figures.

summary.md and report.html render the same Document, so they never disagree. Notes are short
inline-markdown lines (`**bold**`, `` `code` ``; a leading "- " makes a bullet).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from optbench.reporting.groups import Group
from optbench.reporting.sensitivity import arm_label, lr_width, metric_name, searched
from optbench.reporting.stats import expected_best
from optbench.rundir.reader import Run


@dataclass
class Section:
    """One part of the report: a task's table, notes and figures (or the cross-task profiles)."""

    title: str | None  # None for the only task of a one-task report
    intro: str
    table: pd.DataFrame  # already readable: text cells, human column names
    notes: list[str] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)  # whose configs the HTML shows


@dataclass
class Document:
    """The whole report: its sections, the runs that did not complete cleanly, and where it lives."""

    sections: list[Section]
    troubled: list[str]
    root: Path  # figure paths are shown relative to it


def describe(task: str, runs: list[Run]) -> str:
    """`mnist_mlp · mnist · mlp 784-100-10 · 3000 iterations`, listing every value where runs differ."""

    def values(describe_run) -> str:
        found = []
        for run in runs:
            value = describe_run(run)
            if value and value not in found:
                found.append(value)
        return " / ".join(found)

    dataset = values(lambda run: run.summary.get("dataset"))
    model = values(
        lambda run: " ".join(
            filter(None, [run.summary.get("model"), "-".join(str(w) for w in run.summary.get("model_layers", []))])
        )
    )
    iterations = values(lambda run: str(run.summary.get("iterations", "")))
    parts = [task] + [dataset] * (dataset != task) + [model] + [f"{iterations} iterations"] * bool(iterations)
    return " · ".join(part for part in parts if part and part != "?")


def troubled_runs(runs: list[Run]) -> list[str]:
    """One line per run that did not complete cleanly: its dir, status and what went wrong."""
    lines = []
    for run in (run for run in runs if not run.clean):
        details = [f"{len(run.train)} iterations recorded"]
        if run.summary.get("diverged_at"):
            details.append(
                f"diverged at iteration {run.summary['diverged_at']}: "
                f"{run.summary.get('divergence', 'loss not finite')}"
            )
        if run.summary.get("advice"):
            details.append(run.summary["advice"])
        if run.summary.get("error"):
            details.append(f"error: {run.summary['error']}")
        details += run.problems
        lines.append(f"- `{run.path}`: **{run.status}** ({'; '.join(details)})")
    return lines


def significant_pairs(pairs: pd.DataFrame) -> list[str]:
    """How many pairs differ significantly (Holm-corrected, 5%), then one line per such pair, better first."""
    tested = pairs[pairs.p.notna()]
    if tested.empty:
        return []
    lines = [
        f"Paired t-tests over common seeds, Holm-corrected within the task: {int(tested.significant.sum())} of "
        f"{len(tested)} differences significant at 5%. Not significant is not the same: these seeds detect (with "
        f"80% power) differences of {tested.detectable.min():.3g} to {tested.detectable.max():.3g} at the least, "
        "and pairwise.csv's `seeds_needed` says how many seeds each observed difference would need."
    ]
    for row in tested[tested.significant].itertuples():
        better, worse = (row.first, row.second) if row.advantage > 0 else (row.second, row.first)
        lines.append(
            f"- **{better}** beats **{worse}** on {row.metric.replace('_', ' ')} by {abs(row.advantage):.4g} "
            f"(n={row.common_seeds}, p={row.p_holm:.2g})"
        )
    return lines


def _plain(value: object) -> str:
    """A searched value as it was given: 1 rather than pandas' 1.0."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def tuning_notes(tuning: pd.DataFrame) -> list[str]:
    """What stage 1 of a tune sweep chose per arm, and how many of its trials completed."""
    if tuning.empty:
        return []
    keys = searched(tuning)
    lines = [
        f"Tuned by `{tuning['select'].iloc[0]}` of the {metric_name(tuning)} over {', '.join(keys)} on seed "
        f"{', '.join(map(str, dict.fromkeys(tuning.seed)))} (stage 1, tuning.csv); the table reruns each "
        "arm's chosen setting over the seeds:"
    ]
    for arm, trials in tuning.groupby("arm", sort=False):
        chosen = trials[trials.chosen.astype(bool)]
        setting = (
            " ".join(f"{key}={_plain(chosen[key].iloc[0])}" for key in keys)
            if len(chosen)
            else "nothing (no trial completed)"
        )
        completed = trials[(trials.status == "completed") & trials.final_metric.notna()]
        higher_is_better = str(trials.metric.iloc[0]) == "test_accuracy"
        width = lr_width(trials, higher_is_better)
        lines.append(
            f"- {arm_label(arm)}: {setting} · {len(completed)} of {len(trials)} trials completed"
            + _tuning_budget(completed.final_metric.tolist(), higher_is_better)
            + (f" · near its best over {width:.2g} decades of lr" if width is not None else "")
        )
    return lines


def _tuning_budget(values: list[float], higher_is_better: bool) -> str:
    """The expected best final metric after one of the completed trials and after all of them."""
    if len(values) < 2:
        return ""
    one, every = (expected_best(values, k, higher_is_better) for k in (1, len(values)))
    return f" · expected best after 1 trial {one:.4g}, after {len(values)}: {every:.4g}"
