"""AlgoPerf-style performance profiles across the tasks of one report.

For each label (an optimizer, with its differing settings), its time to target on a task divided by
the best label's time there is a ratio >= 1 (infinite where it missed, or did not run the task);
rho(tau) is the fraction of tasks on which that ratio is at most tau, for tau in [1, 4], and the
score is rho's integral over that range divided by 3 (1 = fastest on every task, 0 = never within 4x).
Time is the median number of iterations to the target over seeds (machine-independent).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.integrate import trapezoid

from optbench.report.plots import new_figure, outside_legend, styles

TAU_MAX = 4.0
TAUS = np.linspace(1.0, TAU_MAX, 301)


def ratios(table: pd.DataFrame) -> pd.DataFrame:
    """label x task: time to target over the task's best time (inf for misses and absent labels).

    Only tasks with a target count; a task nobody reached gives every label an infinite ratio.
    """
    with_target = table[table.iters_to_target.notna()]
    times = with_target.pivot_table(index="label", columns="task", values="iters_to_target", aggfunc="first")
    times = times.reindex(index=list(dict.fromkeys(with_target.label)), columns=list(dict.fromkeys(with_target.task)))
    times = times.fillna(math.inf)
    best = times.min(axis=0)
    return (times / best).where(np.isfinite(times) & np.isfinite(best), math.inf)


def profiles(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rho: one column per label indexed by tau, scores: label, score, tasks_fastest, tasks_reached, tasks)."""
    ratio = ratios(table)
    rho = pd.DataFrame({label: [(row <= tau).mean() for tau in TAUS] for label, row in ratio.iterrows()},
                       index=pd.Index(TAUS, name="tau"))
    scores = pd.DataFrame({
        "label": ratio.index,
        "score": [float(trapezoid(rho[label], TAUS) / (TAU_MAX - 1.0)) for label in ratio.index],
        "tasks_fastest": (ratio == 1.0).sum(axis=1).to_numpy(),
        "tasks_reached": np.isfinite(ratio).sum(axis=1).to_numpy(),
        "tasks": ratio.shape[1],
    }).sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    return rho, scores


DESCRIPTION = (f"Fraction of tasks on which each run reached the target within tau times the fastest run's "
               f"median iterations, for tau in [1, {TAU_MAX:g}]; the score is the area under that curve divided "
               f"by {TAU_MAX - 1:g} (1 = fastest on every task). A miss counts as infinitely slow.")


def readable(scores: pd.DataFrame) -> pd.DataFrame:
    """The scores with human column names, best first."""
    return pd.DataFrame({"run": scores.label, "score": scores.score.map("{:.3f}".format),
                         "fastest on": scores.tasks_fastest.astype(str) + "/" + scores.tasks.astype(str),
                         "reached on": scores.tasks_reached.astype(str) + "/" + scores.tasks.astype(str)})


def applies(table: pd.DataFrame) -> bool:
    """Profiles need two or more tasks with a target."""
    return table[table.iters_to_target.notna()].task.nunique() > 1


def profile_figure(rho: pd.DataFrame, scores: pd.DataFrame) -> Figure:
    """rho(tau) per label as a step curve, the legend giving each label's integrated score."""
    figure, axes = new_figure("Performance profiles: fraction of tasks reached within tau x the fastest "
                              "(median iterations to target)", f"{int(scores.tasks.iloc[0])} tasks")
    palette = styles(list(scores.label))
    for row in scores.itertuples():
        style = palette[row.label]
        axes.step(rho.index, rho[row.label], where="post", color=style.colour, linestyle=style.linestyle,
                  linewidth=1.8, label=f"{row.label} (score {row.score:.2f})")
    axes.set_xlim(1.0, TAU_MAX)
    axes.set_ylim(-0.02, 1.02)
    axes.set_xlabel("tau (time to target relative to the fastest on each task)")
    axes.set_ylabel("fraction of tasks")
    outside_legend(axes, len(scores))
    return figure
