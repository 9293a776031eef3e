"""`hydra/sweeper=tune`: tune each arm's hyper-parameters on one seed, then rerun the winners over seeds.

A thin Hydra Sweeper over `optbench.sweeps.tuning`: it launches every batch through the configured
launcher (basic, joblib, submitit, ...) and scores trials from the files they wrote, so it works
with any launcher. Imports of optbench's heavier modules wait until a sweep starts, because Hydra
imports every plugin module whenever any Hydra app starts.
"""

from __future__ import annotations

import itertools
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

if TYPE_CHECKING:
    from optbench.sweeps.tuning import Arm

log = logging.getLogger(__name__)


def arm_name(arm: list[str], common: list[str]) -> str:
    """tuning.csv's name of an arm: its choices, led by the optimizer when every arm has the same one
    (so the tuning.csv files of one-optimizer sweeps stay apart in a report over several)."""
    from optbench.config.compose import override_key

    fixed = [override for override in common if override_key(override) == "optimizer"]
    swept = any(override_key(override) == "optimizer" for override in arm)
    return " ".join([*([] if swept else fixed), *arm]) or "default"


class TuneSweeper(Sweeper):
    """Stage 1: every search point per arm on `tuning_seed`; stage 2: each arm's best point over `seeds`."""

    def __init__(
        self,
        search: str = "grid",
        trials: int = 11,
        params: Any = None,
        select: str = "time_to_target",
        seeds: Any = 5,
        tuning_seed: int = 1000,
        search_seed: int = 0,
        split: str = "validation",
        digits: int = 3,
        batch: Any = None,
    ) -> None:
        super().__init__()
        self.batch = batch
        self.search, self.trials, self.select, self.split, self.digits = search, trials, select, split, digits
        from optbench.config.compose import flatten

        # {'optimizer': {'lr': spec}} (a command-line override of params) -> {'optimizer.lr': spec}
        self.params = flatten(OmegaConf.to_container(params) if OmegaConf.is_config(params) else params or {})
        self.seeds, self.tuning_seed, self.search_seed = seeds, tuning_seed, search_seed
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Launcher | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        """Keep the context and build the configured launcher."""
        from hydra.core.plugins import Plugins

        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def _stage_seeds(self) -> list[int]:
        """Stage 2's seeds: 0..seeds-1, or the list given."""
        seeds = OmegaConf.to_container(self.seeds) if OmegaConf.is_config(self.seeds) else self.seeds
        return list(range(seeds)) if isinstance(seeds, int) else seeds

    def settings(self) -> dict[str, Any]:
        """The sweeper's own settings (`hydra.sweeper.*`), as `optbench.config.validation.check_sweeper` reads them."""
        return {
            "search": self.search,
            "trials": self.trials,
            "batch": self.batch,
            "select": self.select,
            "split": self.split,
            "seeds": self.seeds,
            "tuning_seed": self.tuning_seed,
            "search_seed": self.search_seed,
            "digits": self.digits,
        }

    def _plan(self, arguments: list[str]) -> tuple[list[list[str]], list[str], list]:
        """(the arms: each a list of overrides, the overrides common to every job, the search dimensions)."""
        from optbench.config.compose import override_key
        from optbench.errors import OptbenchError
        from optbench.sweeps.tuning import dimension_of, parse_dimension

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        dimensions = {key: parse_dimension(key, spec) for key, spec in self.params.items()}
        choices, common = [], []
        for override in parser.parse_overrides(arguments):
            key = override.get_key_element()
            if override_key(key) == "seed":
                raise OptbenchError(
                    "seed=... cannot be given to the tune sweeper: it runs every stage-1 trial with "
                    f"hydra.sweeper.tuning_seed (now {self.tuning_seed}) and stage 2 with hydra.sweeper.seeds "
                    f"(now {self.seeds}). Set those instead, e.g. hydra.sweeper.seeds=10."
                )
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
        """Stage 1 in one launch for every arm (an adaptive search: one launch per round of asked points),
        tuning.csv rewritten after each; then stage 2, every arm's winner over the seeds, in one launch."""
        from optbench.errors import exit_status_2

        with exit_status_2():
            return self._sweep(arguments)

    def _sweep(self, arguments: list[str], prefix: str = "") -> list[list[JobReturn]]:
        """Both stages over `arguments`; with a `prefix` (a folder of the sweep dir, e.g. `mnist_mlp/`: the bench's
        tasks) every trial, run and tuning.csv goes below it."""
        from dataclasses import replace

        from optbench.config.validation import check_sweeper
        from optbench.rundir.writer import TUNING_CSV, TUNING_DIR
        from optbench.runtime.threads import announce_jobs_at_once
        from optbench.sweeps.tuning import ADAPTIVE_SEARCHES, Arm, score_trial, search_points, write_tuning_csv

        check_sweeper(self.settings())
        seeds = self._stage_seeds()
        arms, common, dimensions = self._plan(arguments)
        if self.split == "validation":
            # Every trial and rerun holds the validation split out: stage 2 trains on the examples the
            # chosen setting was tuned with, and reports the test split, which nothing was selected on.
            common = [c for c in common if not c.startswith("validation=")] + ["validation=true"]
        dimensions = [replace(d, digits=self.digits) for d in dimensions]
        adaptive = self.search in ADAPTIVE_SEARCHES and bool(dimensions)
        stage_one = [Arm(arm, arm_name(arm, common)) for arm in arms]
        if adaptive:
            from optbench.sweeps.search import AdaptiveSearch

            for arm in stage_one:
                arm.search = AdaptiveSearch(dimensions, self.search, self.search_seed)
            per_arm, batch = self.trials, self._batch_size(len(arms))
        else:
            points = search_points(dimensions, self.search, self.trials, self.search_seed)
            per_arm, batch = len(points), len(points)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        (sweep_dir / prefix).mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        log.info(
            "tune: %d arms x %d trials (%s search over %s%s) on seed %d, selected on the %s split, then the "
            "best of each arm over seeds %s",
            len(arms),
            per_arm,
            self.search,
            ", ".join(d.key for d in dimensions) or "nothing",
            f", {batch} per arm at a time" if adaptive else "",
            self.tuning_seed,
            self.split,
            seeds,
        )
        probe = {
            d.key: d.at(0.5) for d in dimensions
        }  # every arm composes before the first trial runs: a typo fails at once
        for arm in stage_one:
            self.validate_batch_is_legal([self._trial(common, arm, probe, "probe")])

        returns: list[list[JobReturn]] = []
        job = 0
        while any(len(arm.points) < per_arm for arm in stage_one):
            launch = []  # one launch for every arm's next trials: a vectorised group spans optimizers
            for index, arm in enumerate(stage_one):
                count = min(batch, per_arm - len(arm.points))
                new = arm.search.ask(count) if adaptive else points[len(arm.points) : len(arm.points) + count]
                for point in new:
                    arm.dirs.append(f"{prefix}{TUNING_DIR}/{index * per_arm + len(arm.points)}")
                    arm.points.append(point)
                    launch.append(self._trial(common, arm, point, arm.dirs[-1]))
            announce_jobs_at_once(len(launch))
            returns.append(list(self.launcher.launch(launch, initial_job_idx=job)))
            job += len(launch)
            for arm in stage_one:
                told = len(arm.scores)
                arm.scores += [score_trial(sweep_dir / run_dir, self.split) for run_dir in arm.dirs[told:]]
                if adaptive:
                    arm.search.tell(arm.scores[told:], self.select)
            write_tuning_csv(sweep_dir / prefix / TUNING_CSV, [row for arm in stage_one for row in self._rows(arm)])

        winners = [setting for arm in stage_one if (setting := self._winner(arm, common, prefix)) is not None]
        stage_two = [[*overrides, f"seed={seed}"] for overrides in winners for seed in seeds]
        if prefix:  # below the prefix too (without one, Hydra's default: <sweep dir>/<job number>)
            stage_two = [[*job, f"hydra.sweep.subdir={prefix}{n}"] for n, job in enumerate(stage_two)]
        if stage_two:
            announce_jobs_at_once(len(stage_two))
            returns.append(list(self.launcher.launch(stage_two, initial_job_idx=0)))
        return returns

    def _trial(self, common: list[str], arm: Arm, point: dict[str, str], run_dir: str) -> list[str]:
        """A stage-1 trial's overrides."""
        return [
            *common,
            *arm.overrides,
            *(f"{k}={v}" for k, v in point.items()),
            f"seed={self.tuning_seed}",
            f"hydra.sweep.subdir={run_dir}",
        ]

    def _rows(self, arm: Arm) -> list[dict[str, Any]]:
        from optbench.sweeps.tuning import tuning_rows

        return tuning_rows(arm.name, arm.points, arm.scores, arm.dirs, self.tuning_seed, self.select, self.split)

    def _winner(self, arm: Arm, common: list[str], prefix: str = "") -> list[str] | None:
        """The overrides of the arm's chosen trial, or None (logged) when none completed."""
        from optbench.rundir.writer import TUNING_CSV

        chosen = next((row for row in self._rows(arm) if row["chosen"]), None)
        what = " ".join(arm.overrides) or "the sweep"
        if chosen is None:
            log.warning(
                "tune: no trial of %s completed (all diverged or failed; see %s); it is left out of stage 2",
                what,
                Path(self.config.hydra.sweep.dir) / prefix / TUNING_CSV,
            )
            return None
        setting = [f"{k}={chosen[k]}" for k in arm.points[0]]
        reached = chosen["time_to_target"]
        log.info(
            "tune: %s: chose %s (final %s %s %.4g, %s)",
            what,
            " ".join(setting),
            self.split,
            chosen["metric"].removeprefix("test_"),
            chosen["final_metric"],
            "target missed" if math.isnan(reached) else f"target reached at iteration {reached:.0f}",
        )
        return [*common, *arm.overrides, *setting]

    def _batch_size(self, arms: int) -> int:
        """Points asked per arm at a time: what the launcher runs at once, shared by the arms, but at most
        a quarter of the trials (so the search has rounds to learn from), or `batch` when given."""
        if self.batch is not None:
            return self.batch
        from optbench.runtime.threads import launcher_capacity

        at_once = launcher_capacity(self.config.hydra.launcher)
        return max(1, min(at_once // arms, math.ceil(self.trials / 4)))


class BenchSweeper(TuneSweeper):
    """`optbench bench`: the tune protocol of each task of a suite (`hydra.sweeper.suite`), task by task, each
    below its own folder of the sweep dir; then leaderboard.csv and verdicts.csv against the shipped baselines."""

    def __init__(self, suite: Any = None, tasks: Any = None, baselines: Any = True, **settings: Any) -> None:
        super().__init__(**settings)
        self.suite_node, self.only, self.baselines = suite, tasks, baselines

    def sweep(self, arguments: list[str]) -> list[list[JobReturn]]:
        """Every task of the suite (a task that fails is logged and the others go on), then the verdict's tables."""
        from optbench.errors import exit_status_2

        with exit_status_2():
            return self._bench(arguments)

    def _bench(self, arguments: list[str]) -> list[list[JobReturn]]:
        from optbench.bench.baselines import record_start
        from optbench.bench.suite import check_bench_arguments, load_suite
        from optbench.bench.verdict import write_bench
        from optbench.config.compose import flatten
        from optbench.errors import OptbenchError

        suite = load_suite(self.suite_node)
        only = OmegaConf.to_container(self.only) if OmegaConf.is_config(self.only) else self.only
        tasks = [suite.task(name) for name in only] if only else list(suite.tasks)
        check_bench_arguments(arguments, suite.name)
        record_start(Path(self.config.hydra.sweep.dir), suite, arguments)
        returns: list[list[JobReturn]] = []
        failed: dict[str, str] = {}
        for task in tasks:
            for key, value in task.protocol().items():
                setattr(self, key, value)
            self.params = flatten(task.params)
            log.info("bench: suite=%s, task %s (%d of %d)", suite.name, task.name, tasks.index(task) + 1, len(tasks))
            try:
                returns += self._sweep([*task.overrides, *arguments], prefix=f"{task.name}/")
            except OptbenchError as exc:
                log.error("bench: task %s could not run, the other tasks go on: %s", task.name, exc)
                failed[task.name] = str(exc)
        write_bench(Path(self.config.hydra.sweep.dir), suite, [t.name for t in tasks], failed, self.baselines)
        return returns
