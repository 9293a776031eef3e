"""Performance profiles and their integrated score across the tasks of one report, computed as
AlgoPerf's scoring code computes them (`scoring/performance_profile.py`, mlcommons/algorithmic-efficiency).

For each label (an optimizer, with its differing settings) its time to target on a task is the median
over its seeds (AlgoPerf's median over studies), a miss counting as infinite. Per task, times above 4x
the fastest label's become infinite; each time is divided by the fastest (a task nobody reached gives
NaN, which never counts). rho(tau) is the number of tasks with a ratio <= tau divided by the number of
tasks, on tau = linspace(1, 4, 100); the score is rho's trapezoid integral over tau divided by 3
(1 = fastest on every task, 0 = never within 4x). A label that did not run a task counts as a miss.

Two clocks, as AlgoPerf reports both: steps to target, and training seconds to target (test.csv's
`seconds`, evaluations excluded). Steps are machine-independent; seconds are only comparable between
runs made on the same machine.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.integrate import trapezoid

from optbench.reporting.plots import new_figure, outside_legend, styles

MIN_TAU, MAX_TAU, NUM_POINTS = 1.0, 4.0, 100  # AlgoPerf's scoring: min_tau 1, max_tau 4.0, num_points 100
TAUS = np.linspace(MIN_TAU, MAX_TAU, num=NUM_POINTS)
CLOCKS = {"iters_to_target": "steps", "seconds_to_target": "seconds"}  # summary table column -> clock name


def ratios(table: pd.DataFrame, clock: str = "iters_to_target") -> pd.DataFrame:
    """label x task: time to target on `clock` over the task's fastest (inf: a miss or over 4x; NaN: nobody reached it).

    Only tasks with a target count.
    """
    with_target = table[table[clock].notna()]
    times = with_target.pivot_table(index="label", columns="task", values=clock, aggfunc="first")
    times = times.reindex(index=list(dict.fromkeys(with_target.label)), columns=list(dict.fromkeys(with_target.task)))
    times = times.fillna(math.inf)  # a label that did not run a task never reached its target there
    best = times.min(axis=0)
    times = times.mask(times > MAX_TAU * best, math.inf)  # AlgoPerf: not within 4x of the fastest
    with np.errstate(invalid="ignore"):
        return times / best  # inf / inf = NaN where nobody reached the target: never <= tau


def profiles(table: pd.DataFrame, clock: str = "iters_to_target") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rho: one column per label indexed by tau, scores: label, score, tasks_fastest, tasks_reached, tasks)."""
    ratio = ratios(table, clock)
    tasks = ratio.shape[1]
    rho = pd.DataFrame(
        {label: [(row <= tau).sum() / tasks for tau in TAUS] for label, row in ratio.iterrows()},
        index=pd.Index(TAUS, name="tau"),
    )
    scores = (
        pd.DataFrame(
            {
                "label": ratio.index,
                "score": [float(trapezoid(rho[label], TAUS) / (MAX_TAU - MIN_TAU)) for label in ratio.index],
                "tasks_fastest": (ratio == 1.0).sum(axis=1).to_numpy(),
                "tasks_reached": np.isfinite(ratio).sum(axis=1).to_numpy(),
                "tasks": tasks,
            }
        )
        .sort_values("score", ascending=False, kind="stable")
        .reset_index(drop=True)
    )
    return rho, scores


def description(clock: str) -> str:
    """What the profile on `clock` shows, in one paragraph."""
    unit = "median steps" if clock == "iters_to_target" else "median training seconds (evaluations excluded)"
    return (
        f"Fraction of tasks on which each run reached the target within tau times the fastest run's {unit}, "
        f"for tau in [{MIN_TAU:g}, {MAX_TAU:g}]; the score is the area under that curve divided by "
        f"{MAX_TAU - MIN_TAU:g} (1 = fastest on every task), computed as AlgoPerf's scoring code does. A miss, "
        f"or a time over {MAX_TAU:g}x the fastest, counts as infinitely slow."
    )


def readable(scores: pd.DataFrame) -> pd.DataFrame:
    """The scores with human column names, best first."""
    return pd.DataFrame(
        {
            "run": scores.label,
            "score": scores.score.map("{:.3f}".format),
            "fastest on": scores.tasks_fastest.astype(str) + "/" + scores.tasks.astype(str),
            "reached on": scores.tasks_reached.astype(str) + "/" + scores.tasks.astype(str),
        }
    )


def applies(table: pd.DataFrame, clock: str = "iters_to_target") -> bool:
    """Profiles on `clock` need two or more tasks with a target (and, for seconds, runs that recorded them)."""
    return clock in table and table[table[clock].notna()].task.nunique() > 1


def profile_figure(rho: pd.DataFrame, scores: pd.DataFrame, clock: str = "iters_to_target") -> Figure:
    """rho(tau) per label as a step curve, the legend giving each label's integrated score."""
    figure, axes = new_figure(
        f"Performance profiles ({CLOCKS[clock]}): fraction of tasks reached within tau x the fastest",
        f"{int(scores.tasks.iloc[0])} tasks, median over seeds",
    )
    palette = styles(list(scores.label))
    for row in scores.itertuples():
        style = palette[row.label]
        axes.step(
            rho.index,
            rho[row.label],
            where="post",
            color=style.colour,
            linestyle=style.linestyle,
            linewidth=1.8,
            label=f"{row.label} (score {row.score:.2f})",
        )
    axes.set_xlim(MIN_TAU, MAX_TAU)
    axes.set_ylim(-0.02, 1.02)
    axes.set_xlabel(f"tau ({CLOCKS[clock]} to target relative to the fastest on each task)")
    axes.set_ylabel("fraction of tasks")
    outside_legend(axes, len(scores))
    return figure
