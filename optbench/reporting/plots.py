"""Comparison figures, drawn with matplotlib's object API on the Agg canvas (no pyplot state)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from optbench.reporting.groups import Group, aligned, mean_std, smoothed
from optbench.reporting.interactive import write_spec


@dataclass(frozen=True)
class Style:
    """How one label is drawn in every figure: a colour and, past ten labels, a line style/hatch."""

    colour: tuple
    linestyle: str
    hatch: str | None


def styles(labels: list[str]) -> dict[str, Style]:
    """A distinct, stable style per label: tab10's colours, then the same colours dashed, dotted..."""
    palette = matplotlib.colormaps["tab10"].colors
    lines, hatches = ["-", "--", ":", "-."], [None, "//", "..", "xx"]
    return {
        label: Style(palette[i % 10], lines[(i // 10) % 4], hatches[(i // 10) % 4]) for i, label in enumerate(labels)
    }


def new_figure(title: str, subtitle: str, width: float = 10.0, height: float = 5.5) -> tuple[Figure, object]:
    """A titled figure on the Agg canvas with one grid-lined axes."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_title(f"{title}\n{subtitle}", fontsize=11)
    axes.grid(True, alpha=0.3)
    return figure, axes


def outside_legend(axes, count: int) -> None:
    """The legend to the right of the axes."""
    # Outside the axes, so a dozen curves never hide the data.
    if not axes.get_legend_handles_labels()[0]:
        return  # nothing drawn (runs stopped before their first evaluation)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8 if count > 8 else 9, frameon=False)


def save(figure: Figure, path: Path) -> Path:
    """Write `figure` to `path` atomically (the format follows the suffix), and its interactive
    version for report.html beside it where it translates (see `interactive`)."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    figure.savefig(tmp, dpi=130)
    os.replace(tmp, path)
    write_spec(figure, path)
    return path


def training_curves(
    groups: list[Group], column: str, window: int, subtitle: str, log_y: bool, palette: dict[str, Style]
) -> Figure:
    """Minibatch loss or accuracy vs iteration: raw mean faint, moving average bold, ±std band."""
    name = {"loss": "Training loss", "accuracy": "Training accuracy on minibatches"}[column]
    figure, axes = new_figure(f"{name}, moving average over {window} iterations (raw: faint)", subtitle)
    raw_alpha = 0.2 if len(groups) <= 4 else 0.07  # a dozen raw curves would fog the figure
    drawn = []
    for group in groups:
        if not group.curves:
            continue
        style = palette[group.label]
        raw = aligned(group.curves, "train", column)
        smooth = smoothed(group.curves, column, window)
        if column == "accuracy":
            raw, smooth = 100 * raw, 100 * smooth
        drawn.append(smooth)
        axes.plot(raw.index, raw.mean(axis=1), color=style.colour, alpha=raw_alpha, linewidth=0.6)
        mean, std = mean_std(smooth)
        axes.plot(
            mean.index, mean, color=style.colour, linestyle=style.linestyle, linewidth=1.8, label=legend_label(group)
        )
        if len(group.curves) > 1:
            axes.fill_between(mean.index, mean - std, mean + std, color=style.colour, alpha=0.2, linewidth=0)
    axes.set_xlabel("iteration")
    if column == "loss":
        axes.set_ylabel("minibatch loss" + (" (log scale)" if log_y else ""))
        if log_y and all((frame.min() > 0).all() for frame in drawn):
            axes.set_yscale("log")
    else:
        axes.set_ylabel("accuracy (%)")
        _zoom_accuracy(axes, drawn)
    outside_legend(axes, len(groups))
    return figure


def _zoom_accuracy(axes, frames: list[pd.DataFrame]) -> None:
    """Show accuracies (%) from a little below the worst value after the first 10% of training."""
    tails = [f.iloc[len(f) // 10 :].min().min() for f in frames if len(f)]
    if tails and np.isfinite(min(tails)):
        axes.set_ylim(max(0.0, min(tails) - 2), 100.5)


def test_metric(
    groups: list[Group], column: str, subtitle: str, palette: dict[str, Style], target: float | None = None
) -> Figure:
    """Test accuracy (%) or test loss (log scale) at each evaluation (markers), mean ± std over seeds."""
    accuracy = column == "accuracy"
    figure, axes = new_figure("Test accuracy" if accuracy else "Test loss", subtitle)
    frames = []
    for group in groups:
        tested = [run for run in group.runs if not run.test.empty]
        if not tested:
            continue
        values = aligned(tested, "test", column) * (100 if accuracy else 1)
        frames.append(values)
        mean, std = mean_std(values)
        style = palette[group.label]
        axes.errorbar(
            mean.index,
            mean,
            yerr=std if len(tested) > 1 else None,
            color=style.colour,
            linestyle=style.linestyle,
            marker="o",
            markersize=4 if len(mean) <= 60 else 0,
            linewidth=1.4,
            capsize=3,
            label=legend_label(group),
        )
    if target is not None:
        axes.axhline(100 * target if accuracy else target, color="0.3", linestyle=":", linewidth=1.2, label="target")
    axes.set_xlabel("iteration")
    if accuracy:
        axes.set_ylabel("test accuracy (%)")
        if frames:
            low, high = min(f.min().min() for f in frames), max(f.max().max() for f in frames)
            axes.set_ylim(max(0.0, low - 1), min(100.0, high + 1))
    else:
        axes.set_ylabel("test loss")
        if frames and min(f.min().min() for f in frames) > 0:
            axes.set_yscale("log")
    outside_legend(axes, len(groups))
    return figure


def learning_rates(groups: list[Group], subtitle: str, palette: dict[str, Style]) -> Figure:
    """The learning rate each group's steps used (its first run's train.csv `lr` column)."""
    figure, axes = new_figure("Learning rate", subtitle)
    for group in groups:
        run = next((run for run in group.curves if run.train.lr.notna().any()), None)
        if run is None:
            continue
        style = palette[group.label]
        axes.plot(
            run.train.iteration,
            run.train.lr,
            color=style.colour,
            linestyle=style.linestyle,
            linewidth=1.6,
            label=legend_label(group),
        )
    axes.set_xlabel("iteration")
    axes.set_ylabel("learning rate")
    outside_legend(axes, len(groups))
    return figure


def final_accuracy_intervals(
    groups: list[Group], table: pd.DataFrame, subtitle: str, palette: dict[str, Style]
) -> Figure:
    """Final test accuracy per group: every seed as a faint point, the mean as a dot with its 95%
    bootstrap interval as a whisker. No bars: a bar's length would claim a zero the axis does not show."""
    by_label = {group.label: group for group in groups}
    rows = table[table.label.isin(by_label)].dropna(subset=["final_test_acc"]).sort_values("final_test_acc")
    figure, axes = new_figure(
        "Final test accuracy: mean and 95% bootstrap CI over seeds (points: single runs)",
        subtitle,
        height=max(2.5, 0.45 * len(rows) + 1.5),
    )
    axes.grid(True, axis="x", alpha=0.3)
    axes.grid(False, axis="y")
    values = []
    for position, row in enumerate(rows.itertuples()):
        colour = palette[row.label].colour
        finals = [100 * run.test.accuracy.iloc[-1] for run in by_label[row.label].runs if not run.test.empty]
        values += finals
        axes.plot(finals, [position] * len(finals), "o", color=colour, alpha=0.35, markersize=4)
        if row.n > 1 and not np.isnan(row.final_test_acc_ci_low):
            axes.plot(
                [row.final_test_acc_ci_low, row.final_test_acc_ci_high],
                [position, position],
                color=colour,
                linewidth=2.5,
                solid_capstyle="butt",
            )
            text = f"{row.final_test_acc:.2f} [{row.final_test_acc_ci_low:.2f}, {row.final_test_acc_ci_high:.2f}]"
        else:
            text = f"{row.final_test_acc:.2f}"
        axes.plot(row.final_test_acc, position, "o", color=colour, markersize=8, markeredgecolor="black")
        axes.annotate(
            text, (row.final_test_acc, position), xytext=(0, 8), textcoords="offset points", ha="center", fontsize=8
        )
    axes.set_yticks(range(len(rows)), rows.label)
    if values:
        low, high = min(values), max(values)
        margin = max(0.2, 0.1 * (high - low))
        axes.set_xlim(max(0.0, low - margin), min(100.0, high + margin))
    axes.set_ylim(-0.7, len(rows) - 0.3)
    axes.set_xlabel("final test accuracy (%)")
    return figure


def pairwise_matrix(pairs: pd.DataFrame, labels: list[str], subtitle: str) -> Figure:
    """Row vs column: mean advantage over common seeds (colour; accuracy in percentage points),
    with * where the Holm-corrected paired t-test is significant at 5%."""
    metric = pairs.metric.iloc[0]
    scale, unit = (100, " pp") if metric == "test_accuracy" else (1, "")
    pairs = pairs[pairs["first"].isin(labels) & pairs["second"].isin(labels)]  # the groups drawn
    labels = [label for label in labels if label in set(pairs["first"]) | set(pairs["second"])]
    size = len(labels)
    matrix = np.full((size, size), np.nan)
    text = [["" for _ in labels] for _ in labels]
    for row in pairs.itertuples():
        i, j = labels.index(row.first), labels.index(row.second)
        for a, b, sign in ((i, j, 1), (j, i, -1)):
            matrix[a, b] = sign * scale * row.advantage
            star = "*" if row.significant else ""
            p_text = "" if np.isnan(row.p_holm) else f"\np={row.p_holm:.2g}"
            text[a][b] = f"{sign * scale * row.advantage:+.2f}{star}{p_text}"
    figure, axes = new_figure(
        f"Paired comparison of final {metric.replace('_', ' ')}: row better than column by\n"
        "(* = significant at 5%, Holm-corrected paired t-test)",
        subtitle,
        width=max(6.0, 1.1 * size + 3),
        height=max(4.0, 0.9 * size + 2),
    )
    axes.grid(False)
    limit = np.nanmax(np.abs(matrix)) if np.isfinite(matrix).any() else 1.0
    image = axes.imshow(matrix, cmap="RdBu", vmin=-limit, vmax=limit)
    for i in range(size):
        for j in range(size):
            dark = np.isfinite(matrix[i, j]) and abs(matrix[i, j]) > 0.6 * limit
            axes.text(j, i, text[i][j], ha="center", va="center", fontsize=7, color="white" if dark else "black")
    axes.set_xticks(range(size), labels, rotation=45, ha="right")
    axes.set_yticks(range(size), labels)
    figure.colorbar(image, ax=axes, label=f"row − column ({metric.replace('_', ' ')}{unit}, better > 0)")
    return figure


def scratch_pair(torch_group: Group, scratch_group: Group, window: int, subtitle: str) -> Figure:
    """The lab's overlay: training loss and accuracy of torch.optim's X against optbench's scratch/X."""
    figure = Figure(figsize=(12.0, 4.8), layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(
        f"{torch_group.label} (torch.optim) vs {scratch_group.label} (from scratch)\n{subtitle}", fontsize=11
    )
    for axes, column in zip(figure.subplots(1, 2), ("loss", "accuracy")):
        for group, colour, style in ((torch_group, "tab:blue", "-"), (scratch_group, "tab:orange", "--")):
            if not group.curves:
                continue
            smooth = smoothed(group.curves, column, window)
            scale = 100 if column == "accuracy" else 1
            axes.plot(
                smooth.index,
                scale * smooth.mean(axis=1),
                color=colour,
                linestyle=style,
                linewidth=1.6,
                label=legend_label(group),
            )
        axes.set_title(f"training {column} (moving average over {window})", fontsize=10)
        axes.set_xlabel("iteration")
        axes.set_ylabel("accuracy (%)" if column == "accuracy" else "loss (log scale)")
        if column == "loss":
            axes.set_yscale("log")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=9)
    return figure


def legend_label(group: Group) -> str:
    """The group's label, with its number of runs when it has several."""
    suffix = f" (n={len(group.curves)})" if len(group.runs) > 1 else ""
    return group.label + suffix
