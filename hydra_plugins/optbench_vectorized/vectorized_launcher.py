"""A Hydra Launcher that trains the jobs of a sweep that can share one pass as one wide model.

Hydra's own `run_job` still creates each job's output dir, `.hydra/` files and log file; the
training itself is `optbench.sweeps.vectorized.engine.run_group` for a group, or the ordinary task
function for a job that runs alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
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

    def __init__(self, max_members: int = 64) -> None:
        super().__init__()
        self.max_members = max_members
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
            check_launcher({"max_members": self.max_members})
        configs = [self._sweep_config(overrides, initial_job_idx + i) for i, overrides in enumerate(job_overrides)]
        groups, alone = plan_groups(configs, self.max_members)
        log.info(
            "Launching %d jobs: %d in %d vectorised group(s), %d alone",
            len(configs),
            sum(map(len, groups)),
            len(groups),
            len(alone),
        )
        returns: dict[int, JobReturn] = {}
        for group in groups:
            returns.update(zip(group, self._launch_group([configs[i] for i in group])))
        for i, reason in sorted(alone.items()):
            log.info(
                "\t#%d : %s runs alone: %s", initial_job_idx + i, " ".join(filter_overrides(job_overrides[i])), reason
            )
            returns[i] = self._run_alone(configs[i])
        return [returns[i] for i in range(len(configs))]

    def _launch_group(self, configs: list[DictConfig]) -> list[JobReturn]:
        """Set up each member's dir and files as Hydra does, then train the group in one pass."""
        from optbench.errors import OptbenchError
        from optbench.job.job import objective, stop_on_sigterm
        from optbench.sweeps.vectorized.engine import run_group

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
        out_dirs = [ret.return_value for ret in returns]
        loggers = [
            _job_logger(config.hydra.job.num, out_dir, config.hydra.job.name)
            for config, out_dir in zip(configs, out_dirs)
        ]
        for config, ret in zip(configs, returns):
            log.info("\t#%d : %s", config.hydra.job.num, " ".join(filter_overrides(ret.overrides)))
            self.hydra_context.callbacks.on_job_start(config=config, task_function=self.task_function)
        summaries: list[dict[str, Any]] = [{} for _ in configs]
        try:
            with stop_on_sigterm():  # a scheduler's SIGTERM stops the group like Ctrl-C
                summaries = run_group(configs, out_dirs, loggers)
        except OptbenchError as exc:  # e.g. the dataset cannot be loaded: every member failed, the sweep goes on
            log.error("%s", exc)
        except Exception:
            log.exception("vectorised group failed; details are in each member's summary.json")
        finally:
            for logger in loggers:
                _close_logger(logger)
        for config, ret, summary in zip(configs, returns, summaries):
            ret.return_value = objective(summary)
            ret.status = JobStatus.COMPLETED  # a failed member is recorded in its summary.json, as `optbench -m` does
            self.hydra_context.callbacks.on_job_end(config=config, job_return=ret)
        if any(summary.get("status") == "interrupted" for summary in summaries):
            raise KeyboardInterrupt  # stop the sweep; every member keeps its rows
        return returns
