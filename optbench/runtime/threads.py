"""How many CPU threads a job of a sweep gets: what its launcher gives it, never the whole machine
when the machine is shared.

Measured on 2 cores: two concurrent runs with torch's default thread count each were ~7x slower than
one thread per job, and a 4-job submitit_local sweep took 68.9 s against 15.7 s with one thread each.
An explicit `threads=` always wins; the rules below only fill in `threads=null`.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

# Set by the launching process before a launch (the tune sweeper per launch; the JobsAtOnce callback
# for Hydra's basic sweeper): how many jobs that launch runs. Subprocess launchers inherit it.
JOBS_AT_ONCE = "OPTBENCH_JOBS_AT_ONCE"


def available_cores() -> int:
    """The CPUs this process may run on: its affinity mask (a SLURM or container allocation), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def jobs_at_once() -> int | None:
    """The number of jobs the current launch runs at once, if the launching process said so."""
    value = os.environ.get(JOBS_AT_ONCE, "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def _joblib_concurrency(launcher: DictConfig, cores: int) -> int:
    n_jobs = launcher.get("n_jobs") or -1
    return n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)  # joblib: -1 = all cores, -2 = all but one


def _ray_cpus(launcher: DictConfig) -> int | None:
    """Ray: the `num_cpus` each task asks for, else what Ray assigned to this worker."""
    asked = OmegaConf.select(launcher, "ray.remote.num_cpus")
    if isinstance(asked, (int, float)) and asked >= 1:
        return int(asked)
    ray = sys.modules.get("ray")  # a Ray worker has imported it; elsewhere importing it would cost seconds
    if ray is None:
        return None
    try:
        assigned = ray.get_runtime_context().get_assigned_resources().get("CPU")
    except Exception:  # Ray without a runtime context (imported, not a worker)
        return None
    return max(1, int(assigned)) if assigned else None


def runs_apart(launcher: DictConfig) -> bool:
    """True when the launcher runs each job in a process of its own (joblib, submitit, Ray), which a signal can
    stop alone and which may take a GPU of its own; False for the sweep's own process (basic, vectorized)."""
    return not str(launcher.get("_target_", "")).endswith(("BasicLauncher", "VectorizedLauncher"))


def launcher_threads(launcher: DictConfig) -> int | None:
    """CPU threads for each job of a launcher that runs several jobs at once on shared cores, or None
    (a launcher that runs one job at a time: torch's default).

    - joblib: the cores divided by `n_jobs` (the jobs it runs at once);
    - submitit_local: `cpus_per_task` when given, else the cores divided by the jobs of the launch
      (it starts them all at once);
    - submitit_slurm: the CPUs SLURM allocated to the task (`cpus_per_task`, `$SLURM_CPUS_PER_TASK`, or
      the process's affinity mask), not the node's;
    - Ray: the task's `num_cpus` (or the CPUs Ray assigned to the worker), else one;
    - vectorized with `processes` > 1: the cores divided by the processes (each trains one group at a time).
    """
    target = str(launcher.get("_target_", ""))
    cores = available_cores()
    if target.endswith("VectorizedLauncher"):
        processes = launcher.get("processes")
        return max(1, cores // processes) if isinstance(processes, int) and processes > 1 else None
    if target.endswith("JoblibLauncher"):
        return max(1, cores // _joblib_concurrency(launcher, cores))
    if "submitit" in target:
        if isinstance(launcher.get("cpus_per_task"), int):
            return launcher.cpus_per_task
        if target.endswith("SlurmLauncher"):
            slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
            return int(slurm) if slurm.isdigit() else cores
        return max(1, cores // (jobs_at_once() or cores))  # unknown: one thread each, never oversubscribed
    if "ray" in target.lower():
        return _ray_cpus(launcher) or 1
    return None


def launcher_capacity(launcher: DictConfig) -> int:
    """How many jobs the configured launcher runs at once: a vectorised group, joblib's n_jobs, submitit's
    array (all of a local launch: the cores), or one."""
    target = str(launcher.get("_target_", ""))
    if target.endswith("VectorizedLauncher"):
        return int(launcher.get("max_members") or 1)
    if target.endswith("JoblibLauncher"):
        return _joblib_concurrency(launcher, available_cores())
    if target.endswith("SlurmLauncher"):
        return int(launcher.get("array_parallelism") or 1)
    if target.endswith("LocalLauncher") and "submitit" in target:
        return available_cores()
    return 1


def announce_jobs_at_once(count: int) -> None:
    """Tell the jobs of the next launch (in subprocesses started from here) how many run at once."""
    os.environ[JOBS_AT_ONCE] = str(max(1, count))


class JobsAtOnce(Callback):
    """For Hydra's basic sweeper: before the sweep, announce how many jobs its launches run at once
    (the sweep's jobs, or `max_batch_size` of them). The tune sweeper announces each launch itself."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Count the jobs of the basic sweeper's first (largest) batch."""
        if not str(OmegaConf.select(config, "hydra.sweeper._target_", default="")).endswith("BasicSweeper"):
            return
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        overrides = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
        batches = BasicSweeper.split_arguments(overrides, OmegaConf.select(config, "hydra.sweeper.max_batch_size"))
        announce_jobs_at_once(max((len(batch) for batch in batches), default=1))
