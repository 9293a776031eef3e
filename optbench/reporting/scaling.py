"""Batch-size scaling: steps to target against the batch size (Shallue et al. 2019; Zhang et al. 2019).

Each group's median steps to target (AlgoPerf's rule: a seed that missed counts as infinite) comes
from the summary table; per optimizer and batch size the best group is kept, so a sweep over lrs and
batch sizes shows each batch size at its best lr. Perfect scaling halves the steps when the batch
doubles; the batch size where a curve leaves that line is the critical batch size.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullLocator

from optbench.reporting.groups import Group
from optbench.reporting.plots import new_figure, outside_legend, styles

# Plain numbers on the log axis, at 1, 2 and 5 times a power of ten (every minor tick would crowd).
PLAIN = FuncFormatter(
    lambda value, _: (
        f"{value:g}" if value > 0 and round(value / 10 ** math.floor(math.log10(value))) in (1, 2, 5) else ""
    )
)


def batch_size_of(group: Group) -> int | None:
    """The batch size the group's runs trained with (summary.json's `batch_size`), None if they differ."""
    sizes = {run.summary.get("batch_size") for run in group.runs}
    size = sizes.pop() if len(sizes) == 1 else None
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def scaling_points(groups: list[Group], table: pd.DataFrame) -> pd.DataFrame:
    """Columns optimizer, batch_size, steps (the best group's median steps to target; inf: missed) and
    label (that group), one row per optimizer and batch size, sorted."""
    steps = dict(zip(table.label, table.iters_to_target))
    rows = []
    for group in groups:
        size = batch_size_of(group)
        value = steps.get(group.label, math.nan)
        if size is None or math.isnan(value):
            continue
        optimizer = group.runs[0].choices.get("optimizer") or group.runs[0].summary.get("optimizer", "?")
        rows.append({"optimizer": str(optimizer), "batch_size": size, "steps": value, "label": group.label})
    if not rows:
        return pd.DataFrame(columns=["optimizer", "batch_size", "steps", "label"])
    frame = pd.DataFrame(rows).sort_values(["optimizer", "batch_size", "steps"], kind="stable")
    return frame.drop_duplicates(["optimizer", "batch_size"]).reset_index(drop=True)


def applies(points: pd.DataFrame) -> bool:
    """True when some optimizer reached the target at two or more batch sizes."""
    reached = points[np.isfinite(points.steps.astype(float))]
    return bool((reached.groupby("optimizer").batch_size.nunique() >= 2).any())


def scaling_figure(points: pd.DataFrame, subtitle: str, target: str) -> Figure:
    """Median steps to target against batch size, log-log, per optimizer (best group per batch size),
    with the perfect-scaling line through the fastest point of the smallest batch size; misses as
    crosses along the top."""
    figure, axes = new_figure(
        f"Batch-size scaling: median steps to {target}\n(the best setting at each batch size; x = none reached it)",
        subtitle,
    )
    reached = points[np.isfinite(points.steps.astype(float))]
    top = reached.steps.max() * 2
    palette = styles(list(dict.fromkeys(points.optimizer)))
    for optimizer, rows in points.groupby("optimizer", sort=False):
        style = palette[optimizer]
        ok = rows[np.isfinite(rows.steps.astype(float))]
        axes.plot(ok.batch_size, ok.steps, marker="o", color=style.colour, linestyle=style.linestyle, label=optimizer)
        missed = rows[~rows.index.isin(ok.index)]
        axes.plot(
            missed.batch_size, np.full(len(missed), top), "x", color=style.colour, markersize=9, markeredgewidth=2
        )
    smallest = reached.batch_size.min()
    anchor = reached[reached.batch_size == smallest].steps.min()
    sizes = np.array(sorted(points.batch_size.unique()), dtype=float)
    axes.plot(
        sizes,
        anchor * smallest / sizes,
        color="0.4",
        linestyle="--",
        linewidth=1.2,
        label="perfect scaling (steps x batch = const.)",
    )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xticks(sizes, [f"{int(s)}" for s in sizes], minor=False)
    axes.xaxis.set_minor_locator(NullLocator())
    axes.yaxis.set_major_formatter(PLAIN)
    axes.yaxis.set_minor_formatter(PLAIN)  # a decade or less of steps has no major tick to label
    axes.set_xlabel("batch size (log scale)")
    axes.set_ylabel("median steps to target (log scale)")
    outside_legend(axes, points.optimizer.nunique() + 1)
    return figure
