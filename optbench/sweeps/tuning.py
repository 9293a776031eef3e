"""The tuning protocol behind `hydra/sweeper=tune`: the search space, the trials, how a trial is
scored from the files it wrote, which trial wins, and `tuning.csv`.

Kept apart from the Hydra plugin (hydra_plugins/optbench_tune) so each piece is testable on its own:
stage 1 tries every search point on one tuning seed per arm (an arm = one combination of the
sweep's other choices, e.g. one optimizer); stage 2 reruns each arm's winner over several seeds.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.errors import HydraException

from optbench.config.validation import ADAPTIVE_SEARCHES
from optbench.errors import OptbenchError
from optbench.rundir.reader import first_reaching, load_run
from optbench.rundir.writer import write_text_atomic
from optbench.tasks import Target


@dataclass(frozen=True)
class Dimension:
    """One searched hyper-parameter: an interval (log or linear) or a list of values."""

    key: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    values: tuple[str, ...] = ()
    digits: int = 3  # significant digits of a value drawn from the interval (DeepOBS's grid needs 11)

    def grid(self, points: int) -> list[str]:
        """`points` evenly spaced values of an interval (in log space with `log`), or the listed values."""
        if self.values:
            return list(self.values)
        return [self.at(u) for u in (np.linspace(0.0, 1.0, points) if points > 1 else [0.5])]

    def at(self, u: float) -> str:
        """The value at fraction `u` in [0, 1) of the dimension (a quasi-random or random draw)."""
        if self.values:
            return self.values[min(int(u * len(self.values)), len(self.values) - 1)]
        if self.log:
            value = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            value = self.low + u * (self.high - self.low)
        return format(value, f".{self.digits}g")  # 3 significant digits by default: readable labels, distinct points


def parse_dimension(key: str, spec: Any) -> Dimension:
    """A dimension from Hydra's sweep syntax: `tag(log, interval(1e-5, 1))`, `interval(0, 0.1)`,
    `0.9,0.99`, `choice(a, b)` or `range(1, 4)`."""
    try:
        override = OverridesParser.create().parse_override(f"{key}={spec}")
    except HydraException as exc:
        raise OptbenchError(_bad_dimension(key, spec, f"it does not parse ({exc})")) from None
    return dimension_of(override)


def _bad_dimension(key: str, spec: Any, why: str) -> str:
    return (
        f"The tune sweeper cannot search {key}={spec}: {why}. Give an interval such as "
        f"'{key}=tag(log,interval(1e-5,1))' (log scale) or 'interval(0.8,0.99)', or a list such as "
        f"'{key}=0.9,0.99'."
    )


def dimension_of(override: Override) -> Dimension:
    """The search dimension an interval or list sweep override describes."""
    key, value = override.get_key_element(), override.value()
    spec = (override.input_line or "").partition("=")[2]
    if isinstance(value, IntervalSweep):
        low, high, log = float(value.start), float(value.end), "log" in value.tags
        if not low < high or (log and low <= 0):
            raise OptbenchError(_bad_dimension(key, spec, "the interval needs low < high, and low > 0 on a log scale"))
        return Dimension(key, low, high, log)
    if isinstance(value, (ChoiceSweep, RangeSweep)):
        return Dimension(key, values=tuple(override.sweep_string_iterator()))
    raise OptbenchError(_bad_dimension(key, spec, "it is not an interval or a list of values"))


def search_points(dimensions: list[Dimension], search: str, trials: int, seed: int) -> list[dict[str, str]]:
    """The stage-1 settings, each {key: value}: a full grid (`trials` points per interval), or
    `trials` random or scrambled-Halton draws (scipy.stats.qmc) from `seed` (settings checked by
    `optbench.config.validation.check_sweeper`)."""
    if not dimensions:
        return [{}]  # nothing to search: stage 1 is one trial per arm
    if search in ADAPTIVE_SEARCHES:
        raise ValueError(f"search={search} asks its points batch by batch (optbench.sweeps.search.AdaptiveSearch)")
    keys = [d.key for d in dimensions]
    if search == "grid":
        return [dict(zip(keys, values)) for values in itertools.product(*(d.grid(trials) for d in dimensions))]
    if search == "random":
        draws = np.random.default_rng(seed).random((trials, len(dimensions)))
    else:
        from scipy.stats import qmc

        draws = qmc.Halton(d=len(dimensions), scramble=True, rng=np.random.default_rng(seed)).random(trials)
    return [{d.key: d.at(float(u)) for d, u in zip(dimensions, row)} for row in draws]


@dataclass(frozen=True)
class TrialScore:
    """What stage 1 learnt from one trial's files."""

    status: str
    task: str
    metric: str  # the task's target metric, e.g. test_accuracy
    higher_is_better: bool
    final: float  # its last evaluated value (NaN if never evaluated)
    best: float  # its best evaluated value
    time_to_target: float  # first evaluated iteration meeting the target; NaN if never
    threshold: float = math.nan  # the target's threshold
    budget: float = math.nan  # the trial's iterations

    @property
    def usable(self) -> bool:
        """Only trials that ran to the end compete; diverged, failed and cut-short ones rank last."""
        return self.status == "completed" and not math.isnan(self.final)

    def objective(self, select: str) -> float:
        """The criterion's value (iterations to target, or the final or best metric); NaN when it has none."""
        if not self.usable:
            return math.nan
        return {"time_to_target": self.time_to_target, "final": self.final, "best": self.best}[select]

    def search_value(self, select: str) -> float | None:
        """One number to minimise that orders trials as `rank_key` does (for Optuna), or None for a trial
        that must be told as failed. time_to_target: the fraction of the budget used to reach the target
        (<= 1), or for a miss 1 + g/(1+g), g the final metric's distance to the threshold (in [1, 2))."""
        if not self.usable:
            return None
        sign = -1.0 if self.higher_is_better else 1.0
        if select != "time_to_target":
            return sign * (self.final if select == "final" else self.best)
        if not math.isnan(self.time_to_target):
            return self.time_to_target / self.budget
        gap = max(0.0, sign * (self.final - self.threshold))
        return 1.0 + gap / (1.0 + gap) if math.isfinite(gap) else 2.0

    def rank_key(self, select: str) -> tuple:
        """Sorts best first: usable trials, then the criterion, then the final metric (ties)."""
        if not self.usable:
            return (True, math.inf, math.inf)
        sign = -1.0 if self.higher_is_better else 1.0  # so that smaller sorts first either way
        primary = {
            "time_to_target": math.inf if math.isnan(self.time_to_target) else self.time_to_target,
            "final": sign * self.final,
            "best": sign * self.best,
        }[select]
        return (False, primary, sign * self.final)


def score_trial(run_dir: Path, split: str = "test") -> TrialScore:
    """Score a stage-1 trial on `split` (validation or test: its valid.csv or test.csv) and its summary.json; a
    missing or broken run scores as failed. On the validation split the task's target threshold applies."""
    run = load_run(run_dir)
    target = run.target or Target("test_accuracy", math.inf, "max")
    evaluations = run.test if split == "test" else run.valid
    if evaluations is None:  # the trial never wrote valid.csv (it failed before its first evaluation)
        evaluations = run.test.iloc[:0]
    values = evaluations[target.column].dropna()  # load_run always gives the CSVs' columns, even for no rows
    higher = target.mode == "max"
    return TrialScore(
        status=run.status if (run_dir / "summary.json").exists() else "failed",
        task=run.task,
        metric=target.metric,
        higher_is_better=higher,
        final=float(values.iloc[-1]) if len(values) else math.nan,
        best=float(values.max() if higher else values.min()) if len(values) else math.nan,
        time_to_target=first_reaching(evaluations, target),
        threshold=float(target.threshold),
        budget=float(run.summary.get("iterations") or math.nan),
    )


def rank_trials(scores: list[TrialScore], select: str) -> list[int]:
    """Rank (1 = best) of each trial; ties keep trial order, so the earlier trial wins."""
    order = sorted(range(len(scores)), key=lambda i: (*scores[i].rank_key(select), i))
    ranks = [0] * len(scores)
    for rank, index in enumerate(order, start=1):
        ranks[index] = rank
    return ranks


def tuning_rows(
    arm: str,
    points: list[dict[str, str]],
    scores: list[TrialScore],
    dirs: list[str],
    seed: int,
    select: str,
    split: str = "test",
) -> list[dict[str, Any]]:
    """tuning.csv's rows for one arm: every trial, its objective and rank, and whether it was chosen."""
    ranks = rank_trials(scores, select)
    return [
        {
            "task": score.task,
            "arm": arm,
            "trial": i,
            **point,
            "seed": seed,
            "status": score.status,
            "split": split,
            "metric": score.metric,
            "final_metric": score.final,
            "best_metric": score.best,
            "time_to_target": score.time_to_target,
            "select": select,
            "objective": score.objective(select),
            "rank": rank,
            "chosen": rank == 1 and score.usable,
            "run_dir": run_dir,
        }
        for i, (point, score, rank, run_dir) in enumerate(zip(points, scores, ranks, dirs))
    ]


def write_tuning_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write every trial so far to tuning.csv atomically (rewritten after each arm's stage 1)."""
    write_text_atomic(path, pd.DataFrame(rows).to_csv(index=False))


@dataclass
class Arm:
    """One arm of stage 1: its overrides, name in tuning.csv, and the trials launched so far."""

    overrides: list[str]
    name: str
    search: Any = None  # an AdaptiveSearch for tpe / cmaes / gp
    points: list[dict[str, str]] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)
    scores: list[Any] = field(default_factory=list)
