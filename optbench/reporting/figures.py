"""The report's figures: one small class per figure over one task's groups, and the list of them.

Each figure says which panels it applies to and draws itself; `build_report` writes whatever
applies. Adding a figure = adding a class to FIGURES.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from optbench.reporting import diagnostics, plots, scaling, sensitivity, trajectory
from optbench.reporting.groups import TOP_GROUPS, Group
from optbench.tasks import Target


@dataclass
class Panel:
    """What every figure draws from: one task's groups and table rows, with the shared styling."""

    task: str
    groups: list[Group]
    table: pd.DataFrame
    subtitle: str
    palette: dict[str, plots.Style]
    window: int
    log_loss: bool
    pairwise: pd.DataFrame  # this task's rows of pairwise.csv
    tuning: pd.DataFrame  # this task's stage-1 trials from tuning.csv (empty without a tune sweep)

    @property
    def target(self) -> Target | None:
        """The task's target, from its first run that has one."""
        return next((target for target in (group.target for group in self.groups) if target), None)

    @property
    def drawn(self) -> list[Group]:
        """The groups the figures draw: every one up to TOP_GROUPS, else the best TOP_GROUPS (groups come in the table's
        order, best first), so ten thousand runs never make a thousand-entry legend."""
        return self.groups[:TOP_GROUPS]

    @property
    def caption(self) -> str:
        """The figures' subtitle: the panel's, saying how many groups are drawn when not all are."""
        if len(self.groups) <= TOP_GROUPS:
            return self.subtitle
        return f"{self.subtitle} · the best {TOP_GROUPS} of {len(self.groups)} groups (all in the table)"

    @property
    def has_accuracy(self) -> bool:
        """True when some run recorded an accuracy (a classification task)."""
        return any(run.train.accuracy.notna().any() for group in self.groups for run in group.runs)


class ReportFigure(ABC):
    """One figure of a report: its file name, which panels it applies to, and how it is drawn."""

    name: str

    def applies(self, panel: Panel) -> bool:
        """True when the figure has something to show for this panel."""
        return True

    @abstractmethod
    def drawings(self, panel: Panel) -> dict[str, Figure]:
        """File name (without suffix) -> figure, for `panel`; most figures draw one, named `name`."""

    def write(self, panel: Panel, out_dir: Path, fmt: str) -> list[Path]:
        """Draw and save the figure(s) for `panel` into `out_dir`; the paths written."""
        if not self.applies(panel):
            return []
        return [plots.save(figure, out_dir / f"{name}.{fmt}") for name, figure in self.drawings(panel).items()]


class TrainingCurves(ReportFigure):
    """Minibatch loss (every task) or accuracy (where defined) against iteration, smoothed."""

    def __init__(self, column: str) -> None:
        self.column = column
        self.name = f"train_{column}"

    def applies(self, panel: Panel) -> bool:
        """The loss always; the accuracy only where it is defined."""
        return self.column == "loss" or panel.has_accuracy

    def drawings(self, panel: Panel) -> dict[str, Figure]:
        """Moving averages with the raw curves faint."""
        log_y = panel.log_loss and self.column == "loss"
        return {
            self.name: plots.training_curves(
                panel.drawn, self.column, panel.window, panel.caption, log_y, panel.palette
            )
        }


class TestMetric(ReportFigure):
    """Test accuracy (tasks with accuracy) or test loss (the others) at each evaluation, with the target."""

    def __init__(self, column: str) -> None:
        self.column = column
        self.name = f"test_{column}"

    def applies(self, panel: Panel) -> bool:
        """Accuracy where it is defined; the test loss where accuracy is not, or where the target is on it."""
        if self.column == "accuracy":
            return panel.has_accuracy
        return not panel.has_accuracy or (panel.target is not None and panel.target.column == "loss")

    def drawings(self, panel: Panel) -> dict[str, Figure]:
        """Mean ± std over seeds at each evaluation."""
        target = panel.target
        threshold = target.threshold if target and target.column == self.column else None
        return {self.name: plots.test_metric(panel.drawn, self.column, panel.caption, panel.palette, threshold)}


class LearningRate(ReportFigure):
    """The learning rate over the run, where some run's schedule changed it."""

    name = "learning_rate"

    def applies(self, panel: Panel) -> bool:
        """Only when some run's lr was not constant."""
        return any(run.train.lr.nunique() > 1 for group in panel.groups for run in group.runs)

    def drawings(self, panel: Panel) -> dict[str, Figure]:
        """One line per group."""
        return {self.name: plots.learning_rates(panel.drawn, panel.caption, panel.palette)}


class FinalAccuracy(ReportFigure):
    """Final test accuracy per group: seeds, mean and 95% bootstrap interval, sorted."""

    name = "final_accuracy"

    def applies(self, panel: Panel) -> bool:
        """Only where accuracy is defined."""
        return panel.has_accuracy

    def drawings(self, panel: Panel) -> dict[str, Figure]:
        """Seeds as points, means with 95% bootstrap intervals."""
        return {self.name: plots.final_accuracy_intervals(panel.drawn, panel.table, panel.caption, panel.palette)}


class PairwiseComparisons(ReportFigure):
    """Every two groups compared over their common seeds: the advantage and its significance."""

    name = "pairwise"

    def applies(self, panel: Panel) -> bool:
        """Where at least one pair could be tested (two or more common seeds)."""
        return bool(panel.pairwise.p.notna().any())

    def drawings(self, panel: Panel) -> dict[str, Figure]:
        """A matrix, groups in the table's order."""
        return {self.name: plots.pairwise_matrix(panel.pairwise, [group.label for group in panel.drawn], panel.caption)}


class LearningRateSensitivity(ReportFigure):
    """Final metric against the learning rate over a tune sweep's stage-1 trials."""

    name = "lr_sensitivity"

    def applies(self, panel: Panel) -> bool:
        """Where a tune sweep tried two or more learning rates."""
        return sensitivity.LR in panel.tuning and panel.tuning[sensitivity.LR].nunique() > 1

    def drawings(self, panel: Panel) -> dict[str, Figure]:
        """One curve per arm (optimizer), log x."""
        return {self.name: sensitivity.sensitivity_figure(panel.tuning, panel.subtitle, panel.target)}


class BatchScaling(ReportFigure):
    """Median steps to target against batch size, per optimizer, with the perfect-scaling line."""

    name = "batch_scaling"

    def applies(self, panel: Panel) -> bool:
        """Where the task has a target and some optimizer reached it at two or more batch sizes."""
        return panel.target is not None and scaling.applies(scaling.scaling_points(panel.groups, panel.table))

    def drawings(self, panel: Panel) -> dict[str, Figure]:
        """Log-log, the best setting of each optimizer at each batch size."""
        points = scaling.scaling_points(panel.groups, panel.table)
        return {self.name: scaling.scaling_figure(points, panel.subtitle, str(panel.target))}


class ScratchPairs(ReportFigure):
    """The lab's overlay of torch.optim's X and optbench's scratch/X, one figure per pair present."""

    name = "pair"

    def pairs(self, panel: Panel) -> list[tuple[Group, Group]]:
        """(torch group, scratch group) for every scratch/X whose X is in the panel too."""
        by_label = {group.label: group for group in panel.groups}
        return [
            (by_label[label.removeprefix("scratch/")], group)
            for label, group in by_label.items()
            if label.startswith("scratch/") and label.removeprefix("scratch/") in by_label
        ]

    def applies(self, panel: Panel) -> bool:
        """Where a scratch optimizer ran beside its torch twin."""
        return bool(self.pairs(panel))

    def drawings(self, panel: Panel) -> dict[str, Figure]:
        """One `pair_<X>` figure per pair."""
        return {
            "pair_" + "".join(c if c.isalnum() or c in "-_." else "_" for c in twin.label): plots.scratch_pair(
                twin, scratch, panel.window, panel.subtitle
            )
            for twin, scratch in self.pairs(panel)
        }


class Trajectories(ReportFigure):
    """Every run's path over the contour plot of a 2-D task's function."""

    name = "trajectory"

    def applies(self, panel: Panel) -> bool:
        """2-D tasks: runs that wrote trajectory.csv, on a function optbench knows."""
        return trajectory.surface_of(panel.groups) is not None and any(
            run.trajectory is not None and not run.trajectory.empty for group in panel.groups for run in group.runs
        )

    def drawings(self, panel: Panel) -> dict[str, Figure]:
        """Log-spaced contours, the minima starred, each path in its group's style."""
        return {
            self.name: trajectory.paths_figure(
                panel.drawn, *trajectory.surface_of(panel.groups), panel.caption, panel.palette
            )
        }


class TrajectoryAnimation(Trajectories):
    """The same paths drawn step by step, as an animated GIF (`optbench report --gif`)."""

    def write(self, panel: Panel, out_dir: Path, fmt: str) -> list[Path]:
        """`trajectory.gif`, whatever the figure format."""
        if not self.applies(panel):
            return []
        return [
            trajectory.write_animation(
                panel.drawn,
                *trajectory.surface_of(panel.groups),
                panel.caption,
                panel.palette,
                out_dir / f"{self.name}.gif",
            )
        ]


class Sharpness(ReportFigure):
    """The sharpness each group met (diagnostics.csv) against its stability threshold."""

    name = "sharpness"

    def applies(self, panel: Panel) -> bool:
        """Where some run measured its sharpness (`diagnostics.every`)."""
        return diagnostics.has_sharpness(panel.groups)

    def drawings(self, panel: Panel) -> dict[str, Figure]:
        """Log scale, thresholds dashed."""
        return {self.name: diagnostics.sharpness_figure(panel.drawn, panel.caption, panel.palette)}


class UpdateRatios(ReportFigure):
    """The update-to-weight ratio per parameter tensor (diagnostics.csv), per group."""

    name = "update_ratios"

    def applies(self, panel: Panel) -> bool:
        """Where some runs measured their steps with the same parameter tensors."""
        return bool(diagnostics.ratio_columns(panel.groups))

    def drawings(self, panel: Panel) -> dict[str, Figure]:
        """Small multiples, one per tensor."""
        return {self.name: diagnostics.update_ratio_figure(panel.drawn, panel.caption, panel.palette)}


FIGURES: list[ReportFigure] = [
    TrainingCurves("loss"),
    TrainingCurves("accuracy"),
    TestMetric("accuracy"),
    TestMetric("loss"),
    LearningRate(),
    FinalAccuracy(),
    PairwiseComparisons(),
    LearningRateSensitivity(),
    BatchScaling(),
    ScratchPairs(),
    Trajectories(),
    Sharpness(),
    UpdateRatios(),
]
