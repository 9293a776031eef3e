"""A Hydra Launcher that trains the jobs of a sweep that can share one pass as one wide model.

Hydra's own `run_job` still creates each job's output dir, `.hydra/` files and log file; the
training itself is `optbench.sweeps.vectorized.engine.run_group` for a group, or the ordinary task
function for a job that runs alone.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)

JOB_LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's default job log format


class _NoCallbacks:
    """Callbacks for the bookkeeping pass of group members: the real ones run around the training."""

    def on_job_start(self, **kwargs: Any) -> None:
        """Nothing: the member has not started training yet."""

    def on_job_end(self, **kwargs: Any) -> None:
        """Nothing: the member has not finished training yet."""


def _output_dir(task_cfg: DictConfig) -> Path:
    """The task function of a group member's bookkeeping pass: its output dir, set up by run_job."""
    return Path(HydraConfig.get().runtime.output_dir)


def _job_logger(index: int, out_dir: Path, job_name: str) -> logging.Logger:
    """A logger for one member: its lines go to the job's own log file and to stderr, named by job number."""
    logger = logging.getLogger(f"optbench.job{index}")
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO)
    for handler in (logging.FileHandler(out_dir / f"{job_name}.log", mode="a"), logging.StreamHandler()):
        handler.setFormatter(logging.Formatter(JOB_LOG_FORMAT))
        logger.addHandler(handler)
    return logger


def _close_logger(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)


class VectorizedLauncher(Launcher):
    """Groups the sweep's jobs (see `optbench.sweeps.vectorized.grouping`) and trains each group in one pass."""

    def __init__(self, max_members: int = 64, processes: int | None = None) -> None:
        super().__init__()
        self.max_members = max_members
        self.processes = processes
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        """Keep what launching needs."""
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def _sweep_config(self, overrides: Sequence[str], index: int) -> DictConfig:
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = index
            sweep_config.hydra.job.num = index
        return sweep_config

    def _run_alone(self, config: DictConfig) -> JobReturn:
        ret = run_job(
            hydra_context=self.hydra_context,
            task_function=self.task_function,
            config=config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return ret

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Run every job: groups through the engine, the others one by one; returns in job order."""
        from optbench.sweeps.vectorized.grouping import plan_groups

        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        from optbench.config.validation import check_launcher
        from optbench.errors import exit_status_2

        with exit_status_2():
            check_launcher({"max_members": self.max_members, "processes": self.processes})
        configs = [self._sweep_config(overrides, initial_job_idx + i) for i, overrides in enumerate(job_overrides)]
        groups, alone = plan_groups(configs, self.max_members)
        workers = side_by_side(self.processes, [configs[group[0]] for group in groups])
        log.info(
            "Launching %d jobs: %d in %d vectorised group(s)%s, %d alone",
            len(configs),
            sum(map(len, groups)),
            len(groups),
            f" over {workers} processes" if workers > 1 else "",
            len(alone),
        )
        returns: dict[int, JobReturn] = {}
        trained = self._train_groups([[configs[i] for i in group] for group in groups], workers)
        for group, ((group_configs, group_returns, _), summaries) in zip(groups, trained):
            returns.update(zip(group, self._close_group(group_configs, group_returns, summaries)))
        for i, reason in sorted(alone.items()):
            log.info(
                "\t#%d : %s runs alone: %s", initial_job_idx + i, " ".join(filter_overrides(job_overrides[i])), reason
            )
            returns[i] = self._run_alone(configs[i])
        return [returns[i] for i in range(len(configs))]

    def _open_group(self, configs: list[DictConfig]) -> tuple[list[DictConfig], list[JobReturn], list[Path]]:
        """Set up each member's dir and files as Hydra does (its callbacks' on_job_start included)."""
        quiet = HydraContext(config_loader=self.hydra_context.config_loader, callbacks=_NoCallbacks())
        returns = [
            run_job(
                hydra_context=quiet,
                task_function=_output_dir,
                config=config,
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
            )
            for config in configs
        ]
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        for config, ret in zip(configs, returns):
            log.info("\t#%d : %s", config.hydra.job.num, " ".join(filter_overrides(ret.overrides)))
            self.hydra_context.callbacks.on_job_start(config=config, task_function=self.task_function)
        return configs, returns, [ret.return_value for ret in returns]

    def _train_groups(
        self, groups: list[list[DictConfig]], workers: int
    ) -> Iterator[tuple[tuple[list[DictConfig], list[JobReturn], list[Path]], list[dict[str, Any]]]]:
        """Each group opened (`_open_group`) and trained, with its members' summaries: one after another in this
        process, or all opened first and trained side by side in `workers` processes (`train_apart`)."""
        if workers > 1:
            opened = [self._open_group(configs) for configs in groups]
            yield from zip(opened, train_apart(opened, workers))
            return
        for configs in groups:
            group = self._open_group(configs)
            yield group, train_members(group[0], group[2])

    def _close_group(
        self, configs: list[DictConfig], returns: list[JobReturn], summaries: list[dict[str, Any]]
    ) -> list[JobReturn]:
        """Hand each member's objective to the sweeper; an interrupted member stops the sweep (rows kept)."""
        from optbench.job.job import objective

        for config, ret, summary in zip(configs, returns, summaries):
            ret.return_value = objective(summary)
            ret.status = JobStatus.COMPLETED  # a failed member is recorded in its summary.json, as `optbench -m` does
            self.hydra_context.callbacks.on_job_end(config=config, job_return=ret)
        if any(summary.get("status") == "interrupted" for summary in summaries):
            raise KeyboardInterrupt  # stop the sweep; every member keeps its rows
        return returns


def side_by_side(processes: int | None, group_configs: list[DictConfig]) -> int:
    """How many groups train at once, each in a process of its own: `processes`, or by default one per visible
    GPU when the groups train on CUDA (`auto` or `cuda`) and one otherwise; never more than the groups."""
    from optbench.runtime.device import gpu_count

    if processes is None:
        on_gpus = any(str(config.device.type) in ("auto", "cuda") for config in group_configs)
        processes = gpu_count() if on_gpus else 1
    return max(1, min(processes, len(group_configs)))


def train_members(configs: list[DictConfig], out_dirs: list[Path], slot: int | None = None) -> list[dict[str, Any]]:
    """Train one group (in the launcher's process, or a worker's with its `slot`); return its members' summaries."""
    from optbench.errors import OptbenchError
    from optbench.job.job import stop_on_sigterm
    from optbench.sweeps.vectorized.engine import run_group

    loggers = [
        _job_logger(config.hydra.job.num, out_dir, config.hydra.job.name) for config, out_dir in zip(configs, out_dirs)
    ]
    summaries: list[dict[str, Any]] = [{} for _ in configs]
    try:
        with stop_on_sigterm():  # a scheduler's SIGTERM stops the group like Ctrl-C
            summaries = run_group(configs, out_dirs, loggers, slot)
    except OptbenchError as exc:  # e.g. the dataset cannot be loaded: every member failed, the sweep goes on
        log.error("%s", exc)
    except Exception:
        log.exception("vectorised group failed; details are in each member's summary.json")
    finally:
        for logger in loggers:
            _close_logger(logger)
    return summaries


def _worker_setup() -> None:
    """A worker process logs as the launcher does."""
    logging.basicConfig(level=logging.INFO, format=JOB_LOG_FORMAT)


def train_apart(
    opened: list[tuple[list[DictConfig], list[JobReturn], list[Path]]], workers: int
) -> Iterator[list[dict[str, Any]]]:
    """Train the opened groups in `workers` spawned processes, group g in worker g mod `workers` (its slot, so
    its GPU); yield each group's summaries in group order. Ctrl-C or SIGTERM stops every worker (rows kept)."""
    if not opened:
        return
    from optbench.job.job import stop_on_sigterm

    context = multiprocessing.get_context("spawn")  # CUDA cannot be used in a forked child
    pools = [context.Pool(1, initializer=_worker_setup) for _ in range(workers)]
    try:
        with stop_on_sigterm():
            pending = [
                pools[g % workers].apply_async(train_members, (configs, out_dirs, g % workers))
                for g, (configs, _, out_dirs) in enumerate(opened)
            ]
            for result in pending:
                yield result.get()
    except BaseException:
        for pool in pools:
            pool.terminate()  # SIGTERM: each worker's group stops as a scheduler's signal stops it
        raise
    finally:
        for pool in pools:
            pool.close()
            pool.join()
