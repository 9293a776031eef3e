"""Learning-rate sensitivity: stage 1 of a tune sweep (its tuning.csv), final metric against lr."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

from optbench.reporting.plots import new_figure, outside_legend, styles
from optbench.rundir.writer import TUNING_CSV
from optbench.tasks import Target

log = logging.getLogger(__name__)

LR = "optimizer.lr"
REQUIRED = {"task", "arm", "status", "metric", "seed", "final_metric", "chosen"}
# tuning.csv's own columns; every other column is a searched hyper-parameter.
FIXED_COLUMNS = (
    "task",
    "arm",
    "trial",
    "seed",
    "status",
    "split",
    "metric",
    "final_metric",
    "best_metric",
    "time_to_target",
    "select",
    "objective",
    "rank",
    "chosen",
    "run_dir",
)


def load_tuning(paths: list[Path]) -> pd.DataFrame:
    """Every tuning.csv at or below `paths`, concatenated (empty when there is none); a file that cannot
    be read is skipped with a warning (it only costs the sensitivity figure)."""
    frames = []
    for csv in (csv for path in paths if path.is_dir() for csv in sorted(path.rglob(TUNING_CSV))):
        try:
            frame = pd.read_csv(csv)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
            log.warning("%s is unreadable (%s): the report leaves out its sensitivity figure", csv, exc)
            continue
        if missing := REQUIRED - set(frame.columns):
            log.warning(
                "%s lacks the columns %s: the report leaves out its sensitivity figure", csv, ", ".join(sorted(missing))
            )
            continue
        frames.append(frame.assign(sweep=str(csv.parent)))
    if not frames:
        return pd.DataFrame()
    tuning = pd.concat(frames, ignore_index=True)
    # One optimizer per sweep names no arm ("default"): across sweeps, tell the arms apart by their sweep dir.
    shared = tuning.groupby("arm").sweep.transform("nunique") > 1
    tuning.loc[shared, "arm"] = (
        tuning.arm[shared].astype(str) + " (" + tuning.sweep[shared].map(lambda p: Path(p).name) + ")"
    )
    return tuning


# A trial is "near the best" within this: 1 point of accuracy, or 10% of the loss.
ACCURACY_TOLERANCE = 0.01
LOSS_TOLERANCE = 0.10


def lr_width(trials: pd.DataFrame, higher_is_better: bool) -> float | None:
    """How forgiving an arm is: the width, in decades of lr, of the run of neighbouring lrs around its best trial
    whose final metric is near the best (ACCURACY_TOLERANCE, LOSS_TOLERANCE); a trial that did not complete
    ends the run. None unless lr alone was searched and two or more trials completed (0: the best lr alone; the
    grid's spacing bounds how fine the width can be)."""
    if searched(trials) != [LR]:
        return None
    ordered = trials.sort_values(LR).reset_index(drop=True)
    finals = ordered.final_metric.where(ordered.status == "completed")
    if finals.notna().sum() < 2:
        return None
    best = int(finals.idxmax() if higher_is_better else finals.idxmin())
    limit = finals[best] - ACCURACY_TOLERANCE if higher_is_better else finals[best] * (1 + LOSS_TOLERANCE)

    def near(i: int) -> bool:
        return bool(finals.notna()[i] and (finals[i] >= limit if higher_is_better else finals[i] <= limit))

    low = high = best
    while low > 0 and near(low - 1):
        low -= 1
    while high < len(ordered) - 1 and near(high + 1):
        high += 1
    return float(np.log10(ordered[LR][high] / ordered[LR][low]))


def searched(tuning: pd.DataFrame) -> list[str]:
    """The hyper-parameters stage 1 searched (tuning.csv's columns beyond its own)."""
    return [column for column in tuning.columns if column not in FIXED_COLUMNS and column != "sweep"]


def arm_label(arm: str) -> str:
    """`optimizer=adam schedule=cosine` -> `adam schedule=cosine`, as report labels read."""
    return " ".join(part.removeprefix("optimizer=") for part in str(arm).split())


def metric_name(tuning: pd.DataFrame) -> str:
    """What stage 1 measured, e.g. `validation loss` (tuning.csv's metric on the split it selected on)."""
    metric = str(tuning.metric.iloc[0]).replace("_", " ")
    split = tuning["split"].iloc[0] if "split" in tuning else "test"  # files before the split column: test
    return metric.replace("test", "validation") if split == "validation" else metric


def sensitivity_figure(tuning: pd.DataFrame, subtitle: str, target: Target | None = None) -> Figure:
    """Final metric against lr (log x) per arm: completed trials as points (joined when lr is the only
    searched key), diverged or failed trials as crosses along the bottom, the chosen trial ringed."""
    metric = str(tuning.metric.iloc[0])
    accuracy = metric == "test_accuracy"
    measured = metric_name(tuning)
    seeds = ", ".join(str(s) for s in dict.fromkeys(tuning.seed))
    figure, axes = new_figure(
        f"Learning-rate sensitivity (tuning trials, seed {seeds}): final "
        f"{measured}; x = diverged or failed, ring = chosen",
        subtitle,
    )
    only_lr = searched(tuning) == [LR]
    bottom = blended_transform_factory(axes.transData, axes.transAxes)
    palette = styles([arm_label(arm) for arm in dict.fromkeys(tuning.arm)])
    for row, (arm, trials) in enumerate(tuning.groupby("arm", sort=False)):
        style = palette[arm_label(arm)]
        trials = trials.sort_values(LR)
        ok = trials[(trials.status == "completed") & trials.final_metric.notna()]
        values = ok.final_metric * (100 if accuracy else 1)
        axes.plot(
            ok[LR],
            values,
            marker="o",
            markersize=5,
            linestyle=style.linestyle if only_lr else "none",
            color=style.colour,
            label=arm_label(arm),
        )
        bad = trials[~trials.index.isin(ok.index)]
        # crosses along the bottom, a row per arm so they do not hide each other
        axes.plot(
            bad[LR],
            np.full(len(bad), 0.03 + 0.025 * row),
            "x",
            color=style.colour,
            markersize=9,
            markeredgewidth=2,
            transform=bottom,
            clip_on=False,
        )
        chosen = ok[ok.chosen.astype(bool)]
        axes.plot(
            chosen[LR],
            chosen.final_metric * (100 if accuracy else 1),
            "o",
            markersize=14,
            fillstyle="none",
            markeredgewidth=2,
            color=style.colour,
        )
    if target is not None and target.metric == metric:
        axes.axhline(
            target.threshold * (100 if accuracy else 1), color="0.3", linestyle=":", linewidth=1.2, label="target"
        )
    axes.set_xscale("log")
    axes.set_xlabel("learning rate (log scale)")
    axes.set_ylabel(f"final {measured}" + (" (%)" if accuracy else ""))
    if not accuracy and (tuning.final_metric.dropna() > 0).all():
        axes.set_yscale("log")
    outside_legend(axes, tuning.arm.nunique())
    return figure
