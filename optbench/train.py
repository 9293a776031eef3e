"""The training job: `optbench [overrides]` or `python -m optbench.train [overrides]`.

Composes dataset + model + optimizer + device + trainer settings with Hydra, trains once (or once
per job of a `-m` sweep) and writes train.csv, test.csv and summary.json into the job's output dir.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from torch.optim.lr_scheduler import LRScheduler

from optbench import __version__
from optbench.config.compose import check_length_overrides, group_choices, hydra_node, optimizer_name
from optbench.config.fingerprint import config_fingerprint
from optbench.config.sources import config_dir, shadowed_user_configs
from optbench.config.validation import budget, check_config
from optbench.errors import OptbenchError
from optbench.job.device import device_settings, hardware, numerics, resolve_device
from optbench.job.loop import train
from optbench.job.threads import launcher_threads
from optbench.logger import Tracker, build_tracker, run_info
from optbench.optim.build import Protocol, build_optimizer, protocol_of
from optbench.optim.schedule import build_schedule
from optbench.rundir.recorder import Outcome, Recorder
from optbench.rundir.writer import SUMMARY_JSON, RunRecords, finite_or_none, write_json_atomic
from optbench.tasks import Target, Task, build_task, task_list

log = logging.getLogger(__name__)

SMALL_MODEL = 10  # summary.json lists the final parameters of models with at most this many

# `optbench --help` lists the task presets found in configs/task/, with their descriptions.
OmegaConf.register_new_resolver("optbench_tasks", task_list, replace=True)


@contextmanager
def cpu_settings(flush_denormal: bool, threads: int | None) -> Iterator[None]:
    """Apply the CPU settings for the duration of the block, then restore torch's previous ones."""
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    torch.set_flush_denormal(flush_denormal)
    try:
        yield
    finally:
        torch.set_num_threads(previous_threads)
        torch.set_flush_denormal(False)  # torch's default; it has no getter to restore from


def layer_widths(model: torch.nn.Module) -> list[int]:
    """Widths of a stack of Linear layers, inputs to outputs (e.g. [784, 100, 10]); [] for models that
    are not a stack (a transformer's Linear layers sit side by side in its blocks)."""
    if not isinstance(model, (torch.nn.Sequential, torch.nn.Linear)):
        return []
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    return [m.in_features for m in linears] + [linears[-1].out_features] if linears else []


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _results(outcome: Outcome, target: Target) -> dict[str, Any]:
    """The summary.json fields computed from a finished (or stopped) training loop."""
    accuracies = [(i, result.accuracy) for i, result in outcome.evaluations if not math.isnan(result.accuracy)]
    best = max(accuracies, key=lambda pair: pair[1], default=None)
    reached = next((i for i, result in outcome.evaluations if target.met(result.metric(target.metric))), None)
    return {
        "status": outcome.status,
        "iterations_run": outcome.iterations_run,
        "final_test_accuracy": accuracies[-1][1] if accuracies else None,
        "best_test_accuracy": best[1] if best else None,
        "best_test_iteration": best[0] if best else None,
        "final_train_loss": outcome.last_train_loss,
        "final_test_loss": outcome.evaluations[-1][1].loss if outcome.evaluations else None,
        "reached_target_at": reached,
        "train_seconds": round(outcome.train_seconds, 4),
        "warmup_seconds": round(outcome.warmup_seconds, 4) if outcome.warmup_seconds is not None else None,
        # the steps the clock timed: all but the warm-up step
        "iterations_per_second": (
            round((outcome.iterations_run - 1) / outcome.train_seconds, 2) if outcome.train_seconds > 0 else None
        ),
        **({"diverged_at": outcome.diverged_at, "divergence": outcome.divergence} if outcome.diverged_at else {}),
        **(
            {
                "final_valid_loss": outcome.validations[-1][1].loss,
                "final_valid_accuracy": finite_or_none(outcome.validations[-1][1].accuracy),
            }
            if outcome.validations
            else {}
        ),
    }


def sweep_dir(cfg: DictConfig) -> Path | None:
    """The sweep dir of a job of a sweep (`-m`), or None for a single run."""
    node = hydra_node(cfg)
    mode = OmegaConf.select(node, "mode", default=None) if node is not None else None
    if getattr(mode, "name", str(mode)) != "MULTIRUN":
        return None
    return Path(str(node.sweep.dir))


@dataclass
class Job:
    """One training job's pieces, from its output files to its recorder: what `train` (or the
    vectorised engine, for many jobs at once) needs, and what its summary collects."""

    cfg: DictConfig
    records: RunRecords
    summary: dict[str, Any]
    started: float  # perf_counter at open_job
    name: str = ""  # the optimizer's config name
    task: Task | None = None
    device: torch.device | None = None
    iterations: int = 0
    eval_every: int = 0
    model: torch.nn.Module | None = None
    optimizer: torch.optim.Optimizer | None = None
    protocol: Protocol = Protocol()
    scheduler: LRScheduler | None = None
    recorder: Recorder | None = None
    tracker: Tracker | None = None  # logger=tensorboard|mlflow|wandb: sees every CSV row and the summary
    log: logging.Logger = log  # a vectorised sweep gives each job its own, writing to the job's log file


def _identity(cfg: DictConfig) -> dict[str, Any]:
    """What a job is, before it runs: the first fields of its summary.json."""
    choices = group_choices(cfg)
    return {
        "status": "running",
        "task": OmegaConf.select(cfg, "task.name"),
        "optimizer": optimizer_name(cfg, choices),
        "schedule": choices.get("schedule"),
        "dataset": None,
        "model": choices.get("model"),
        "seed": cfg.seed,
        "iterations": cfg.iterations,
        "batch_size": cfg.batch_size,
        "device": None,
        "torch_version": torch.__version__,
        "optbench_version": __version__,
        "started_at": _now(),
        "config_fingerprint": config_fingerprint(cfg),
    }


def check_job(cfg: DictConfig, out_dir: Path) -> None:
    """Check every setting of the job before anything is read or written (`optbench.config.validation`); a rejected
    job leaves only its summary.json, `failed` with the message, and raises the OptbenchError."""
    try:
        check_config(cfg)
    except OptbenchError as exc:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            out_dir / SUMMARY_JSON,
            {**_identity(cfg), "status": "failed", "error": f"OptbenchError: {exc}", "finished_at": _now()},
        )
        raise


def open_job(cfg: DictConfig, out_dir: Path) -> Job:
    """Start a job's records: summary.json says `running` from here on."""
    summary = _identity(cfg)
    records = RunRecords(out_dir)
    records.write_summary(summary)
    return Job(cfg, records, summary, time.perf_counter(), summary["optimizer"])


def load_task(cfg: DictConfig, device: torch.device) -> Task:
    """Build the configured task and load its data onto `device`."""
    task = build_task(cfg)
    task.setup(device)
    return task


@contextmanager
def run_settings(cfg: DictConfig, device: torch.device) -> Iterator[None]:
    """The CPU settings and the device's numerics policy for the duration of a run (or a group of runs)."""
    with cpu_settings(cfg.flush_denormal, cfg.threads), device_settings(cfg.device, device):
        yield


def open_tracker(job: Job, tracker: Tracker) -> None:
    """Start the job's tracker run and let it see every row the job's CSVs receive."""
    node = hydra_node(job.cfg)
    overrides = list(OmegaConf.select(node, "overrides.task", default=[]) or []) if node is not None else []
    tracker.open(run_info(job.cfg, job.records.out_dir, job.summary, sweep_dir(job.cfg), overrides))
    job.records.mirror_to(tracker.rows)
    job.tracker = tracker


def prepare_job(job: Job, task: Task, device: torch.device) -> None:
    """Seed, build the model, optimizer, schedule and recorder of `job` on a loaded task.

    Jobs of one sweep may share `task`: it holds data, never training state.
    """
    cfg, summary = job.cfg, job.summary
    tracker = build_tracker(cfg.get("logger"))  # a missing package fails here, before any work
    choices = group_choices(cfg)
    summary.update(
        task=task.name,
        target=task.target.as_dict(),
        device=str(device),
        **hardware(device),
        numerics=numerics(cfg.device),
        threads=torch.get_num_threads(),
    )
    steps = budget(cfg, task.train_size, task.steps_per_epoch, task.full_batch)
    iterations = steps.iterations
    summary.update(
        iterations=iterations,
        eval_every=steps.eval_every,
        kind=task.kind,
        dataset=task.data_name,
        batch_size=task.batch_size(cfg.batch_size),
    )

    torch.manual_seed(cfg.seed)  # the model is initialised on the CPU, as in the notebooks
    model = task.build_model().to(device)
    summary.update(model_layers=layer_widths(model), model_parameters=sum(p.numel() for p in model.parameters()))
    optimizer = build_optimizer(cfg.optimizer, model, job.name, cfg.lookahead)
    protocol = protocol_of(cfg.optimizer, job.name)
    scheduler = build_schedule(cfg.schedule, optimizer, iterations, choices.get("schedule", "?"))
    if task.validation:
        job.records.open_validation()  # valid.csv exists from the start, as test.csv does
    recorder = Recorder(
        job.records,
        capacity=min(steps.eval_every, iterations),
        has_accuracy=task.has_accuracy,
        divergence_factor=cfg.divergence_factor,
        trajectory_columns=task.trajectory_columns,
        start=task.position(model),
    )
    job.task, job.device, job.iterations, job.eval_every, job.model = task, device, iterations, steps.eval_every, model
    job.optimizer, job.protocol, job.scheduler, job.recorder = optimizer, protocol, scheduler, recorder
    if tracker is not None:
        open_tracker(job, tracker)


def divergence_advice(cfg: DictConfig, name: str) -> str:
    """What to do about a run that diverged before its first evaluation: the lr it used, and what to try."""
    lr = OmegaConf.select(cfg, "optimizer.lr")
    task = OmegaConf.select(cfg, "task.name")
    smaller = f"optimizer.lr={lr / 10:g}" if isinstance(lr, (int, float)) and lr > 0 else "a smaller optimizer.lr"
    return (
        f"It diverged before its first evaluation with optimizer.lr={lr}: that lr is too large for "
        f"optimizer={name} on task={task}. Try a smaller one ({smaller}), or tune it: "
        f"optbench -m hydra/sweeper=tune task={task} optimizer={name}."
    )


def record_outcome(job: Job, outcome: Outcome) -> None:
    """Put a finished (or stopped) training loop's results into the job's summary; a run that diverged
    before its first evaluation also gets advice (`advice`, and a log line)."""
    job.summary.update(_results(outcome, job.task.target))
    if outcome.diverged_at and not outcome.evaluations:
        job.summary["advice"] = divergence_advice(job.cfg, job.name)
        job.log.warning("%s", job.summary["advice"])
    if sum(p.numel() for p in job.model.parameters()) <= SMALL_MODEL:
        job.summary["final_parameters"] = {n: p.detach().cpu().tolist() for n, p in job.model.named_parameters()}


def fail_job(job: Job, exc: BaseException) -> None:
    """Mark the job failed with the error's one-line description."""
    job.summary.update(status="failed", error=f"{type(exc).__name__}: {exc}")


def close_job(job: Job) -> dict[str, Any]:
    """Write the final summary.json, close the CSVs and return the summary."""
    job.summary.update(wall_seconds=round(time.perf_counter() - job.started, 4), finished_at=_now())
    job.records.write_summary(job.summary)
    job.records.close()
    if job.tracker is not None:
        job.tracker.finish(job.summary)
    return job.summary


def run_job(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Run one training job end to end and return its summary (also written to summary.json).

    Needs only the composed config: `optbench.config.compose.compose(...)` gives one without Hydra's runtime.
    """
    check_job(cfg, out_dir)
    job = open_job(cfg, out_dir)
    try:
        device = resolve_device(cfg.device.type)
        with run_settings(cfg, device):
            prepare_job(job, load_task(cfg, device), device)
            log.info(
                "%s on task %s (%s), %d iterations on %s",
                type(job.optimizer).__name__,
                job.task.name,
                job.task.data_name,
                job.iterations,
                job.device,
            )
            outcome = train(
                job.model,
                job.optimizer,
                job.task,
                job.recorder,
                iterations=job.iterations,
                batch_size=cfg.batch_size,
                eval_every=job.eval_every,
                scheduler=job.scheduler,
                protocol=job.protocol,
                progress=cfg.progress,
            )
            record_outcome(job, outcome)
    except Exception as exc:
        fail_job(job, exc)
        raise
    finally:
        close_job(job)
    return job.summary


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def completed_before(out_dir: Path, fingerprint: str) -> dict[str, Any] | None:
    """The summary of a completed earlier run of this same config in `out_dir`, if there is one."""
    try:
        previous = json.loads((out_dir / SUMMARY_JSON).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if previous.get("status") == "completed" and previous.get("config_fingerprint") == fingerprint:
        return previous
    return None


def objective(summary: dict[str, Any]) -> float | None:
    """What a job returns to a Hydra sweeper: its task's target metric at the end of training
    (`final_test_accuracy`, maximise; `final_test_loss`, minimise: the target's `mode`), or None for a
    job that did not complete (diverged, failed, stopped), which a sweeper must not rank."""
    metric = (summary.get("target") or {}).get("metric")
    value = summary.get(f"final_{metric}") if metric else None
    return float(value) if summary.get("status") == "completed" and isinstance(value, (int, float)) else None


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point: one training job; returns its `objective` (for sweepers)."""
    hydra_cfg = HydraConfig.get()
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    for path in shadowed_user_configs(hydra_cfg.runtime.config_sources):
        log.warning(
            "%s is hidden by optbench's own config of the same name (optbench's configs are searched "
            "first): give it a name of its own",
            path,
        )
    out_dir = Path(hydra_cfg.runtime.output_dir)
    if cfg.resume and (previous := completed_before(out_dir, config_fingerprint(cfg))):
        log.info("resume: %s already holds a completed run of this config; skipping it", out_dir)
        return objective(previous)
    # SIGTERM (a scheduler, `kill`) stops the run like Ctrl-C: the rows so far are kept.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    if cfg.threads is None and (threads := launcher_threads(hydra_cfg.launcher)):
        cfg.threads = threads  # several jobs share this machine's cores
    try:
        check_length_overrides(list(hydra_cfg.overrides.task), cfg)
        summary = run_job(cfg, out_dir)
    except OptbenchError as exc:
        log.error("%s", exc)
        if sweeping:
            return None  # recorded as failed in summary.json; the other jobs of the sweep go on
        sys.exit(2)
    except Exception:
        log.exception("run failed; details are in %s/summary.json", out_dir)
        if sweeping:
            return None
        raise
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    log.info("%s: results in %s", summary["status"], out_dir)
    if summary["status"] == "interrupted":
        raise KeyboardInterrupt  # stop a sweep too; the finished runs keep their outputs
    return objective(summary)


def entry() -> None:
    """Run the Hydra app; Ctrl-C or SIGTERM ends with one line and exit status 130, no traceback."""
    try:
        main()
    except KeyboardInterrupt:
        print(
            "optbench: interrupted; every completed iteration is saved in the run's CSVs "
            "(summary.json says 'interrupted').",
            file=sys.stderr,
        )
        sys.exit(130)


if __name__ == "__main__":
    entry()
