"""Bayesian and evolutionary search for the tune sweeper (`hydra.sweeper.search=tpe|cmaes|gp`), through
Optuna's ask-and-tell interface (Optuna >= 4; Hydra's own Optuna sweeper still pins optuna < 3).

One study per arm, seeded: each batch of points is asked from the trials told so far, so a batch as
large as the launcher runs at once keeps it busy (a vectorised group, joblib's n_jobs). A trial that
diverged or failed is told as failed, never as a NaN objective.
"""

from __future__ import annotations

import logging
from typing import Any

from optbench.errors import OptbenchError
from optbench.sweeps.tuning import Dimension, TrialScore

log = logging.getLogger(__name__)


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise OptbenchError(
            "hydra.sweeper.search=tpe, cmaes and gp run on Optuna, which is not installed: "
            "pip install 'optbench[tune]' (or use search=grid, random or halton)."
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # optbench logs the trials itself (tuning.csv)
    return optuna


def _sampler(optuna: Any, search: str, seed: int) -> Any:
    if search == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if search == "cmaes":  # Optuna samples a one-dimensional or categorical space at random instead (with a warning)
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.GPSampler(seed=seed)


class AdaptiveSearch:
    """One arm's Optuna study over `dimensions`: `ask(n)` points, then `tell` their trials' scores."""

    def __init__(self, dimensions: list[Dimension], search: str, seed: int) -> None:
        optuna = _optuna()
        self.dimensions = dimensions
        self.study = optuna.create_study(direction="minimize", sampler=_sampler(optuna, search, seed))
        self._asked: list[Any] = []  # Optuna trials asked and not told yet, in ask order
        self._failed = optuna.trial.TrialState.FAIL

    def ask(self, count: int) -> list[dict[str, str]]:
        """`count` new points, each {key: value as the override gives it}, drawn from what was told so far."""
        points = []
        for _ in range(count):
            trial = self.study.ask()
            self._asked.append(trial)
            points.append({d.key: self._suggest(trial, d) for d in self.dimensions})
        return points

    @staticmethod
    def _suggest(trial: Any, dimension: Dimension) -> str:
        if dimension.values:
            return str(trial.suggest_categorical(dimension.key, list(dimension.values)))
        value = trial.suggest_float(dimension.key, dimension.low, dimension.high, log=dimension.log)
        return format(value, f".{dimension.digits}g")  # the value the trial runs, as grid points are written

    def tell(self, scores: list[TrialScore], select: str) -> None:
        """Report the asked points' scores, in ask order; unusable trials (diverged, failed) as failed."""
        for trial, score in zip(self._asked, scores, strict=True):
            value = score.search_value(select)
            if value is None:
                self.study.tell(trial, state=self._failed)
            else:
                self.study.tell(trial, value)
        self._asked = []
