"""Optimizer paths over a 2-D test function's contour plot, as a still figure or an animated GIF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from PIL import Image

from optbench.reporting.groups import Group
from optbench.reporting.plots import Style, legend_label, new_figure, outside_legend
from optbench.tasks.functions import FUNCTIONS, Surface

GRID = 300  # contour grid points per axis
LEVELS = 30
GIF_FRAMES = 80


def surface_of(groups: list[Group]) -> tuple[str, Surface] | None:
    """The 2-D function the groups' runs minimised (from their config), if optbench knows it."""
    for group in groups:
        for run in group.runs:
            name = run.config.get("task", {}).get("function") if run.config else None
            if name in FUNCTIONS:
                return name, FUNCTIONS[name]
    return None


def _contours(axes, surface: Surface) -> None:
    """Filled log-spaced contours of f - min f over the plot window, and the minima as stars."""
    (x0, x1), (y0, y1) = surface.bounds
    x, y = torch.meshgrid(
        torch.linspace(x0, x1, GRID, dtype=torch.float64),
        torch.linspace(y0, y1, GRID, dtype=torch.float64),
        indexing="xy",
    )
    z = surface.formula(x, y).numpy()
    z = z - z.min()
    positive = z[z > 0]
    levels = np.logspace(np.log10(np.quantile(positive, 0.002)), np.log10(positive.max()), LEVELS)
    axes.contourf(
        x.numpy(), y.numpy(), np.maximum(z, levels[0]), levels=levels, norm=LogNorm(), cmap="Greys_r", alpha=0.55
    )
    axes.contour(
        x.numpy(), y.numpy(), np.maximum(z, levels[0]), levels=levels, norm=LogNorm(), colors="0.45", linewidths=0.4
    )
    for i, (mx, my) in enumerate(surface.minima):
        axes.plot(
            mx,
            my,
            marker="*",
            markersize=16,
            color="gold",
            markeredgecolor="black",
            linestyle="none",
            zorder=5,
            label="minimum" if i == 0 else None,
        )
    axes.set_xlim(x0, x1)
    axes.set_ylim(y0, y1)
    axes.set_xlabel("x")
    axes.set_ylabel("y")
    axes.grid(False)


def _path_label(group: Group) -> str:
    """The legend entry: the group's label, and how its runs ended unless they all completed."""
    return legend_label(group) + (f" ({group.status})" if group.status != "completed" else "")


def _paths(groups: list[Group]) -> list[tuple[Group, object]]:
    """(group, run) for every run that recorded a trajectory, in the groups' order."""
    return [
        (group, run)
        for group in groups
        for run in group.runs
        if run.trajectory is not None and not run.trajectory.empty
    ]


def paths_figure(groups: list[Group], name: str, surface: Surface, subtitle: str, palette: dict[str, Style]) -> Figure:
    """Every run's path over the function's contours: start circled, a diverged run's end crossed."""
    figure, axes = new_figure(f"Optimizer paths on {name}: {surface.text}", subtitle, width=9.0, height=7.0)
    _contours(axes, surface)
    labelled = set()
    for group, run in _paths(groups):
        style = palette[group.label]
        path = run.trajectory
        label = None if group.label in labelled else _path_label(group)
        labelled.add(group.label)
        on_top = 3 + len(groups) - groups.index(group)  # groups come best first: draw the best path on top
        axes.plot(
            path.x, path.y, color=style.colour, linestyle=style.linestyle, linewidth=1.6, label=label, zorder=on_top
        )
        axes.plot(path.x.iloc[0], path.y.iloc[0], marker="o", color="black", markersize=6, linestyle="none")
        if run.status == "diverged":
            axes.plot(
                path.x.iloc[-1],
                path.y.iloc[-1],
                marker="X",
                color=style.colour,
                markeredgecolor="black",
                markersize=10,
                linestyle="none",
            )
    outside_legend(axes, len(groups) + 1)
    return figure


def write_animation(
    groups: list[Group], name: str, surface: Surface, subtitle: str, palette: dict[str, Style], path: Path
) -> Path:
    """An animated GIF of the paths growing step by step (at most GIF_FRAMES frames).

    The contours are drawn once; each frame restores them and draws only the paths (blitting),
    which keeps a GIF to a few seconds.
    """
    paths = _paths(groups)
    figure, axes = new_figure(f"Optimizer paths on {name}", subtitle, width=8.0, height=6.5)
    figure.set_dpi(80)
    _contours(axes, surface)
    lines, labelled = [], set()
    for group, _ in paths:
        label = None if group.label in labelled else _path_label(group)
        labelled.add(group.label)
        style = palette[group.label]
        lines.append(
            axes.plot([], [], color=style.colour, linestyle=style.linestyle, linewidth=1.6, label=label, animated=True)[
                0
            ]
        )
    outside_legend(axes, len(groups) + 1)
    canvas = figure.canvas
    canvas.draw()
    background = canvas.copy_from_bbox(figure.bbox)
    longest = max(len(run.trajectory) for _, run in paths)
    frames = []
    for count in np.unique(np.linspace(1, longest, min(GIF_FRAMES, longest)).astype(int)):
        canvas.restore_region(background)
        for line, (_, run) in zip(lines, paths):
            line.set_data(run.trajectory.x.iloc[:count], run.trajectory.y.iloc[:count])
            axes.draw_artist(line)
        frames.append(Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB").quantize(colors=128))
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    frames[0].save(tmp, save_all=True, append_images=frames[1:], duration=80, loop=0)
    tmp.replace(path)
    return path
