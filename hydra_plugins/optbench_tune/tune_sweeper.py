"""`hydra/sweeper=tune`: tune each arm's hyper-parameters on one seed, then rerun the winners over seeds.

A thin Hydra Sweeper over `optbench.tuning`: it launches every batch through the configured
launcher (basic, joblib, submitit, ...) and scores trials from the files they wrote, so it works
with any launcher. Imports of optbench's heavier modules wait until a sweep starts, because Hydra
imports every plugin module whenever any Hydra app starts.
"""

from __future__ import annotations

import itertools
import logging
import math
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from hydra.errors import CompactHydraException
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class TuneError(CompactHydraException):
    """A setting of the tune sweeper the user can fix: Hydra prints its message without a traceback."""


def _flatten(params: Any, prefix: str = "") -> dict[str, Any]:
    """{'optimizer': {'lr': spec}} (a command-line override of params) -> {'optimizer.lr': spec}."""
    flat: dict[str, Any] = {}
    for key, value in (params or {}).items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def arm_name(arm: list[str], common: list[str]) -> str:
    """tuning.csv's name of an arm: its choices, led by the optimizer when every arm has the same one
    (so the tuning.csv files of one-optimizer sweeps stay apart in a report over several)."""
    fixed = [override for override in common if override.split("=", 1)[0].lstrip("+~") == "optimizer"]
    swept = any(override.split("=", 1)[0] == "optimizer" for override in arm)
    return " ".join([*([] if swept else fixed), *arm]) or "default"


class TuneSweeper(Sweeper):
    """Stage 1: every search point per arm on `tuning_seed`; stage 2: each arm's best point over `seeds`."""

    def __init__(self, search: str = "grid", trials: int = 11, params: Any = None, select: str = "time_to_target",
                 seeds: Any = 5, tuning_seed: int = 1000, search_seed: int = 0, split: str = "validation",
                 digits: int = 3) -> None:
        super().__init__()
        self.search, self.trials, self.select, self.split, self.digits = search, trials, select, split, digits
        self.params = _flatten(OmegaConf.to_container(params) if OmegaConf.is_config(params) else params)
        self.seeds, self.tuning_seed, self.search_seed = seeds, tuning_seed, search_seed
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Launcher | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        """Keep the context and build the configured launcher."""
        from hydra.core.plugins import Plugins

        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def _stage_seeds(self) -> list[int]:
        from optbench.errors import OptbenchError

        seeds = self.seeds
        if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 1:
            return list(range(seeds))
        if OmegaConf.is_config(seeds):
            seeds = OmegaConf.to_container(seeds)
        if isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            return seeds
        raise OptbenchError(f"hydra.sweeper.seeds={self.seeds!r} must be a number of seeds (e.g. "
                            "hydra.sweeper.seeds=5 for seeds 0..4) or a list of seeds (hydra.sweeper.seeds=[0,1,2]).")

    def _plan(self, arguments: list[str]) -> tuple[list[list[str]], list[str], list]:
        """(the arms: each a list of overrides, the overrides common to every job, the search dimensions)."""
        from optbench.errors import OptbenchError
        from optbench.tuning import dimension_of, parse_dimension

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        dimensions = {key: parse_dimension(key, spec) for key, spec in self.params.items()}
        choices, common = [], []
        for override in parser.parse_overrides(arguments):
            key = override.get_key_element()
            if key.lstrip("+~") == "seed":
                raise OptbenchError(
                    "seed=... cannot be given to the tune sweeper: it runs every stage-1 trial with "
                    f"hydra.sweeper.tuning_seed (now {self.tuning_seed}) and stage 2 with hydra.sweeper.seeds "
                    f"(now {self.seeds}). Set those instead, e.g. hydra.sweeper.seeds=10.")
            if override.is_sweep_override() and (override.is_interval_sweep() or key in dimensions):
                dimensions[key] = dimension_of(override)  # a searched parameter given on the command line
            elif override.is_sweep_override():
                choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
            else:
                if dimensions.pop(key, None) is not None:
                    log.info("tune: %s is fixed on the command line, so stage 1 does not search it", key)
                common.append(f"{key}={override.get_value_element_as_str()}")
        return [list(arm) for arm in itertools.product(*choices)], common, list(dimensions.values())

    def sweep(self, arguments: list[str]) -> list[list[JobReturn]]:
        """Run stage 1 arm by arm (tuning.csv rewritten after each), then stage 2 for every arm at once."""
        from optbench.errors import OptbenchError

        try:
            return self._sweep(arguments)
        except OptbenchError as exc:
            raise TuneError(f"optbench: error: {exc}") from None  # Hydra prints it as one message

    def _sweep(self, arguments: list[str]) -> list[list[JobReturn]]:
        from dataclasses import replace

        from optbench.config import positive_int
        from optbench.records import TUNING_CSV, TUNING_DIR
        from optbench.tuning import check_selection, check_split, score_trial, search_points, tuning_rows, \
            write_tuning_csv

        check_selection(self.select)
        check_split(self.split)
        seeds = self._stage_seeds()
        arms, common, dimensions = self._plan(arguments)
        if self.split == "validation":
            # Every trial and rerun holds the validation split out: stage 2 trains on the examples the
            # chosen setting was tuned with, and reports the test split, which nothing was selected on.
            common = [c for c in common if not c.startswith("validation=")] + ["validation=true"]
        digits = positive_int("hydra.sweeper.digits", self.digits, "hydra.sweeper.digits=3")
        dimensions = [replace(d, digits=digits) for d in dimensions]
        points = search_points(dimensions, self.search, self.trials, self.search_seed)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        log.info("tune: %d arms x %d trials (%s search over %s) on seed %d, selected on the %s split, then the "
                 "best of each arm over seeds %s", len(arms), len(points), self.search,
                 ", ".join(d.key for d in dimensions) or "nothing", self.tuning_seed, self.split, seeds)

        dirs = [[f"{TUNING_DIR}/{a * len(points) + i}" for i in range(len(points))] for a in range(len(arms))]
        batches = [[[*common, *arm, *(f"{k}={v}" for k, v in point.items()), f"seed={self.tuning_seed}",
                     f"hydra.sweep.subdir={run_dir}"] for point, run_dir in zip(points, arm_dirs)]
                   for arm, arm_dirs in zip(arms, dirs)]
        for batch in batches:  # every arm composes before the first trial runs: a typo fails at once
            self.validate_batch_is_legal(batch)

        returns, rows, winners = [], [], []
        for index, (arm, batch, arm_dirs) in enumerate(zip(arms, batches, dirs)):
            returns.append(list(self.launcher.launch(batch, initial_job_idx=index * len(points))))
            scores = [score_trial(sweep_dir / run_dir, self.split) for run_dir in arm_dirs]
            arm_rows = tuning_rows(arm_name(arm, common), points, scores, arm_dirs, self.tuning_seed, self.select,
                                   self.split)
            rows += arm_rows
            write_tuning_csv(sweep_dir / TUNING_CSV, rows)
            chosen = next((row for row in arm_rows if row["chosen"]), None)
            if chosen is None:
                log.warning("tune: no trial of %s completed (all diverged or failed; see %s); it is left out of "
                            "stage 2", " ".join(arm) or "the sweep", sweep_dir / TUNING_CSV)
                continue
            setting = [f"{k}={chosen[k]}" for k in points[0]]
            reached = chosen["time_to_target"]
            log.info("tune: %s: chose %s (final %s %s %.4g, %s)", " ".join(arm) or "the sweep", " ".join(setting),
                     self.split, chosen["metric"].removeprefix("test_"), chosen["final_metric"],
                     "target missed" if math.isnan(reached) else f"target reached at iteration {reached:.0f}")
            winners.append([*common, *arm, *setting])

        stage_two = [[*overrides, f"seed={seed}"] for overrides in winners for seed in seeds]
        if stage_two:
            returns.append(list(self.launcher.launch(stage_two, initial_job_idx=0)))
        return returns
