"""The report's view of diagnostics.csv: the sharpness against its stability threshold, and the update-to-weight
ratios per parameter tensor, per group (the mean over its seeds)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from optbench.reporting.groups import Group
from optbench.reporting.plots import Style, legend_label, new_figure, outside_legend

RATIO = "update_ratio/"


def measured(group: Group) -> list[pd.DataFrame]:
    """The diagnostics of the group's runs that measured their steps."""
    return [run.diagnostics for run in group.runs if run.diagnostics is not None and len(run.diagnostics)]


def curvature(frame: pd.DataFrame) -> tuple[pd.Series, str]:
    """The sharpness a run is judged by: the preconditioned one where the optimizer's P was read, else the plain."""
    if frame.preconditioned_sharpness.notna().any():
        return frame.preconditioned_sharpness, "preconditioned sharpness"
    return frame.sharpness, "sharpness"


def _mean(frames: list[pd.DataFrame], column: str | None = None) -> pd.Series:
    """The mean over runs of a column (or of each run's judged sharpness), by iteration."""
    series = [
        pd.Series((curvature(f)[0] if column is None else f[column]).to_numpy(), index=f.iteration.to_numpy())
        for f in frames
    ]
    return pd.concat(series, axis=1).mean(axis=1)


def has_sharpness(groups: list[Group]) -> bool:
    """True when some run measured its sharpness."""
    return any(frame.sharpness.notna().any() for group in groups for frame in measured(group))


def sharpness_figure(groups: list[Group], subtitle: str, palette: dict[str, Style]) -> Figure:
    """Each group's sharpness (preconditioned for the Adam family) over iterations, its stability threshold dashed
    in the same colour: the edge of stability is where a curve meets its line."""
    figure, axes = new_figure("Sharpness (top Hessian eigenvalue) and its stability threshold (dashed)", subtitle)
    kinds = set()
    for group in groups:
        frames = measured(group)
        if not frames or not any(curvature(f)[0].notna().any() for f in frames):
            continue
        kinds.add(curvature(frames[0])[1])
        style = palette[group.label]
        mean = _mean(frames)
        axes.plot(mean.index, mean, color=style.colour, linewidth=1.8, label=legend_label(group))
        threshold = _mean(frames, "stability_threshold")
        axes.plot(threshold.index, threshold, color=style.colour, linestyle="--", linewidth=1.0)
    axes.set_xlabel("iteration")
    axes.set_ylabel(" / ".join(sorted(kinds)) + " (log scale)")
    axes.set_yscale("log")
    outside_legend(axes, len(groups))
    return figure


def ratio_columns(groups: list[Group]) -> list[str]:
    """The update-ratio columns the groups' runs share, in the model's order."""
    frames = [frame for group in groups for frame in measured(group)]
    if not frames:
        return []
    common = [c for c in frames[0].columns if c.startswith(RATIO)]
    return [c for c in common if all(c in frame.columns for frame in frames)]


def update_ratio_figure(groups: list[Group], subtitle: str, palette: dict[str, Style]) -> Figure:
    """One panel per parameter tensor (at most 8): each group's update-to-weight ratio ||dw|| / ||w||, log scale."""
    columns = ratio_columns(groups)[:8]
    cols = min(4, len(columns))
    rows = math.ceil(len(columns) / cols)
    figure = Figure(figsize=(3.2 * cols + 3, 2.8 * rows + 1), layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(f"Update-to-weight ratio ||Δw|| / ||w|| per parameter tensor\n{subtitle}", fontsize=11)
    panels = figure.subplots(rows, cols, squeeze=False, sharex=True)
    for axes, column in zip(panels.flat, columns):
        for group in groups:
            frames = [f for f in measured(group) if f[column].notna().any()]
            if frames:
                mean = _mean(frames, column).replace([np.inf, -np.inf], np.nan)
                axes.plot(mean.index, mean, color=palette[group.label].colour, linewidth=1.4, label=legend_label(group))
        axes.set_title(column.removeprefix(RATIO), fontsize=9)
        axes.set_yscale("log")
        axes.grid(True, alpha=0.3)
        axes.set_xlabel("iteration", fontsize=8)
    for axes in list(panels.flat)[len(columns) :]:
        axes.set_visible(False)
    handles, labels = panels.flat[0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside right upper", fontsize=8, frameon=False)
    return figure


def last_ratio_to_threshold(group: Group) -> float:
    """The mean over the group's runs of the last measured sharpness (preconditioned for the Adam family) divided
    by its stability threshold: above 1, the run ended past the edge of stability (NaN: not measured)."""
    values = []
    for frame in measured(group):
        judged = curvature(frame)[0]
        both = pd.concat([judged, frame.stability_threshold], axis=1).dropna()
        if len(both):
            values.append(both.iloc[-1, 0] / both.iloc[-1, 1])
    return float(np.mean(values)) if values else math.nan
