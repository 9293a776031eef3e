"""One training job from start to end, the same for every way in: the CLI (`optbench.train`), `optbench.run`,
the vectorised engine (many jobs, one wide model) and the tune sweeper's trials (CLI jobs).

    settle(cfg, out_dir)       what Hydra's runtime adds: the length overrides, the launcher's threads, the
                               hidden-config warning, and `resume` (a finished run is not run again)
    job = Job.open(cfg, dir)   every setting checked; summary.json says `running` (a rejected job: `failed`)
    run = job.setup(task, dev) model, optimizer, schedule, recorder and tracker, built on the loaded task
    train(run.model, ...)      the loop (`optbench.job.loop`; the vectorised engine's wide loop for a group)
    job.finish(run)            the outcome into the summary
    job.close()                summary.json final, the files closed, the tracker told

`run_job` does all of it for one job.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch.optim.lr_scheduler import LRScheduler

from optbench import __version__
from optbench.config.compose import (
    check_length_overrides,
    command_line_overrides,
    group_choices,
    hydra_node,
    optimizer_name,
)
from optbench.config.fingerprint import config_fingerprint
from optbench.config.sources import shadowed_user_configs
from optbench.config.validation import budget, check_config
from optbench.diagnostics.probe import Crossing, Probe, judged_sharpness
from optbench.diagnostics.probe import Settings as DiagnosticsSettings
from optbench.errors import OptbenchError
from optbench.job.loop import Gradients, train
from optbench.logger import Tracker, build_tracker, run_info
from optbench.optim.build import Protocol, build_optimizer, protocol_of
from optbench.optim.schedule import build_schedule
from optbench.rundir.recorder import Outcome, Recorder
from optbench.rundir.summary import Summary, load_summary
from optbench.rundir.writer import RunRecords, finite_or_none
from optbench.runtime import randomness
from optbench.runtime.cluster import slurm_job_id
from optbench.runtime.device import Device, hardware, spread
from optbench.runtime.threads import launcher_threads, runs_apart
from optbench.tasks import Target, Task, build_task

log = logging.getLogger(__name__)

SMALL_MODEL = 10  # summary.json lists the final parameters of models with at most this many


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


@contextmanager
def run_settings(cfg: DictConfig, device: torch.device) -> Iterator[None]:
    """The CPU settings and the device's numerics policy for the duration of a run (or a group of runs)."""
    with cpu_settings(cfg.flush_denormal, cfg.threads), Device.of(cfg.device).settings(device):
        yield


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
        **({"interrupted_by": outcome.interrupted_by} if outcome.interrupted_by else {}),
        **(
            {
                "final_valid_loss": outcome.validations[-1][1].loss,
                "final_valid_accuracy": finite_or_none(outcome.validations[-1][1].accuracy),
            }
            if outcome.validations
            else {}
        ),
    }


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


def diagnosed_divergence(seen: Crossing, diverged_at: int) -> str:
    """What the diagnostics saw before a run diverged at `diverged_at`, in a sentence."""
    if seen.last is None:
        return f"The diagnostics measured no step before it diverged at iteration {diverged_at}."
    which, value = judged_sharpness(seen.last)
    threshold, at = seen.last["stability_threshold"], seen.last["iteration"]
    crossed = (
        f"it first exceeded the stability threshold at iteration {seen.first_above}"
        if seen.first_above is not None
        else "it never exceeded the stability threshold at a measured step"
    )
    return (
        f"Diagnostics: at iteration {at}, the last measured before it diverged at iteration {diverged_at}, the "
        f"{which} was {value:.4g} against a stability threshold of {threshold:.4g}; {crossed}."
    )


def sweep_dir(cfg: DictConfig) -> Path | None:
    """The sweep dir of a job of a sweep (`-m`), or None for a single run."""
    node = hydra_node(cfg)
    mode = OmegaConf.select(node, "mode", default=None) if node is not None else None
    if getattr(mode, "name", str(mode)) != "MULTIRUN":
        return None
    return Path(str(node.sweep.dir))


def completed_before(out_dir: Path, fingerprint: str) -> dict[str, Any] | None:
    """The summary of a completed earlier run of this same config in `out_dir`, if there is one."""
    try:
        previous = load_summary(out_dir)
    except (OSError, ValueError):
        return None
    if previous.get("status") == "completed" and previous.get("config_fingerprint") == fingerprint:
        return previous
    return None


def settle(cfg: DictConfig, out_dir: Path, job_log: logging.Logger = log) -> dict[str, Any] | None:
    """Apply what the job's Hydra runtime adds to its config, for a single run and a vectorised member alike:
    `iterations=` given on the command line replaces a preset's `epochs` (both: refused), a launcher that runs
    jobs side by side sets `threads`, a user config hidden by a shipped one is warned about. Returns the
    summary of a completed earlier run of this config in `out_dir` when `resume=true` finds one (skip it).
    A launcher that runs jobs in processes of their own also spreads them over the visible GPUs (`spread`)."""
    node = hydra_node(cfg)
    if node is not None:
        check_length_overrides(command_line_overrides(cfg), cfg)
        for path in shadowed_user_configs(OmegaConf.select(node, "runtime.config_sources", default=[])):
            job_log.warning(
                "%s is hidden by optbench's own config of the same name (optbench's configs are searched "
                "first): give it a name of its own",
                path,
            )
        launcher = OmegaConf.select(node, "launcher", default=None)
        if cfg.threads is None and launcher is not None and (threads := launcher_threads(launcher)):
            cfg.threads = threads  # several jobs share this machine's cores
        if launcher is not None and runs_apart(launcher) and sweep_dir(cfg) is not None:
            cfg.device.type = spread(str(cfg.device.type), int(node.job.num))  # side by side: a GPU each
    if cfg.resume and (previous := completed_before(out_dir, config_fingerprint(cfg))):
        job_log.info("resume: %s already holds a completed run of this config; skipping it", out_dir)
        return previous
    return None


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)  # the recorder keeps the name: `interrupted_by`


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """SIGTERM (a scheduler, `kill`) stops the work in the block like Ctrl-C: the rows so far are kept."""
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def objective(summary: dict[str, Any]) -> float | None:
    """What a job returns to a Hydra sweeper: its task's target metric at the end of training
    (`final_test_accuracy`, maximise; `final_test_loss`, minimise: the target's `mode`), or None for a
    job that did not complete (diverged, failed, stopped), which a sweeper must not rank."""
    metric = (summary.get("target") or {}).get("metric")
    value = summary.get(f"final_{metric}") if metric else None
    return float(value) if summary.get("status") == "completed" and isinstance(value, (int, float)) else None


def gradients_of(cfg: DictConfig) -> Gradients:
    """What the job does to each gradient before the step (`grad_clip`, `record_grad_norm`)."""
    return Gradients(cfg.get("grad_clip"), bool(cfg.get("record_grad_norm", False)))


def load_task(cfg: DictConfig, device: torch.device) -> Task:
    """Build the configured task and load its data onto `device`."""
    task = build_task(cfg)
    task.setup(device)
    return task


@dataclass
class Run:
    """What a job trains with, made whole by `Job.setup` once the task holds its data."""

    task: Task
    device: torch.device
    iterations: int
    eval_every: int
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    protocol: Protocol
    scheduler: LRScheduler | None  # None: the constant schedule steps nothing
    recorder: Recorder
    gradients: Gradients  # grad_clip / record_grad_norm
    probe: Probe | None = None  # diagnostics.every


class Job:
    """One training job's records and summary, from `open` (every setting checked) to `close`."""

    def __init__(self, cfg: DictConfig, records: RunRecords, summary: Summary, job_log: logging.Logger) -> None:
        self.cfg = cfg
        self.records = records
        self.summary = summary
        self.name = summary.optimizer  # the optimizer's config name
        self.log = job_log  # a vectorised sweep gives each job its own, writing to the job's log file
        self.started = time.perf_counter()
        self.tracker: Tracker | None = None  # logger=tensorboard|mlflow|wandb, opened by setup

    @staticmethod
    def identity(cfg: DictConfig) -> Summary:
        """What a job is, before it runs: the first fields of its summary.json."""
        choices = group_choices(cfg)
        return Summary(
            status="running",
            task=OmegaConf.select(cfg, "task.name"),
            optimizer=optimizer_name(cfg, choices),
            schedule=choices.get("schedule"),
            dataset=None,
            model=choices.get("model"),
            seed=cfg.seed,
            iterations=cfg.iterations,
            batch_size=cfg.batch_size,
            device=None,
            torch_version=torch.__version__,
            optbench_version=__version__,
            started_at=_now(),
            config_fingerprint=config_fingerprint(cfg),
        )

    @classmethod
    def open(cls, cfg: DictConfig, out_dir: Path, job_log: logging.Logger = log) -> Job:
        """Check every setting (`optbench.config.validation`), then start the job's files: summary.json says
        `running` from here on. A rejected job leaves only its summary.json, `failed` with the message, and
        raises the OptbenchError; nothing else is written."""
        try:
            check_config(cfg)
        except OptbenchError as exc:
            rejected = cls.identity(cfg)
            rejected.update(status="failed", error=f"OptbenchError: {exc}", finished_at=_now())
            RunRecords.write_rejected(out_dir, rejected.as_dict())
            raise
        summary = cls.identity(cfg)
        if job_id := slurm_job_id():
            summary.update(slurm_job_id=job_id)
        records = RunRecords(out_dir, grad_norm=gradients_of(cfg).touched)
        records.write_summary(summary.as_dict())
        return cls(cfg, records, summary, job_log)

    def setup(self, task: Task, device: torch.device) -> Run:
        """Seed, then build the model, optimizer, schedule and recorder on a loaded task (and open the tracker).

        Jobs of one group may share `task`: it holds data, never training state.
        """
        cfg, summary = self.cfg, self.summary
        tracker = build_tracker(cfg.get("logger"))  # a missing package fails here, before any work
        summary.update(
            task=task.name,
            target=task.target.as_dict(),
            device=str(device),
            **hardware(device),
            numerics=Device.of(cfg.device).numerics(),
            threads=torch.get_num_threads(),
        )
        steps = budget(cfg, task.train_size, task.steps_per_epoch, task.full_batch)
        summary.update(
            iterations=steps.iterations,
            eval_every=steps.eval_every,
            kind=task.kind,
            dataset=task.data_name,
            batch_size=task.batch_size(cfg.batch_size),
        )
        randomness.seed_model_init(cfg.seed)
        model = task.build_model().to(device)
        summary.update(model_layers=layer_widths(model), model_parameters=sum(p.numel() for p in model.parameters()))
        optimizer = build_optimizer(cfg.optimizer, model, self.name, cfg.lookahead)
        scheduler = build_schedule(cfg.schedule, optimizer, steps.iterations, group_choices(cfg).get("schedule", "?"))
        self.records.open_evaluations(task.evaluated_splits)  # valid.csv exists from the start, as test.csv does
        recorder = Recorder(
            self.records,
            capacity=min(steps.eval_every, steps.iterations),
            has_accuracy=task.has_accuracy,
            divergence_factor=cfg.divergence_factor,
            trajectory_columns=task.trajectory_columns,
            start=task.position(model),
            grad_norm=gradients_of(cfg).touched,
        )
        protocol = protocol_of(cfg.optimizer, self.name)
        gradients = gradients_of(cfg)
        run = Run(
            task, device, steps.iterations, steps.eval_every, model, optimizer, protocol, scheduler, recorder, gradients
        )
        run.probe = self._open_probe(run)
        if tracker is not None:
            self._open_tracker(tracker)
        return run

    def _open_probe(self, run: Run) -> Probe | None:
        """The run's diagnostics (`diagnostics.every`), writing diagnostics.csv; None when off."""
        settings = DiagnosticsSettings.of(self.cfg.get("diagnostics"))
        if not settings.on:
            return None
        loss = run.task.sharpness_loss(settings.batch_size) if settings.sharpness else None
        every, iterations = settings.every, run.iterations
        if every == "eval":
            due = lambda i: i % run.eval_every == 0 or i == iterations  # noqa: E731
        else:
            due = lambda i: i % every == 0  # noqa: E731
        probe = Probe(settings, run.model, due, loss)
        sheet = self.records.open_diagnostics(probe.columns)
        probe.write = lambda iteration, row: sheet.append(iteration, *([row[c]] for c in sheet.columns[1:]))
        return probe

    def _open_tracker(self, tracker: Tracker) -> None:
        """Start the job's tracker run and let it see every row the job's CSVs receive."""
        overrides = command_line_overrides(self.cfg)
        info = run_info(self.cfg, self.records.out_dir, self.summary.as_dict(), sweep_dir(self.cfg), overrides)
        tracker.open(info)
        self.records.mirror_to(tracker.rows)
        self.tracker = tracker

    def train(self, run: Run) -> Outcome:
        """Train a set-up run in the training loop (`optbench.job.loop.train`), with the job's settings."""
        return train(
            run.model,
            run.optimizer,
            run.task,
            run.recorder,
            iterations=run.iterations,
            batch_size=self.cfg.batch_size,
            eval_every=run.eval_every,
            scheduler=run.scheduler,
            protocol=run.protocol,
            gradients=run.gradients,
            probe=run.probe,
            progress=self.cfg.progress,
        )

    def finish(self, run: Run) -> None:
        """Put the training loop's outcome (finished or stopped) into the summary; a run that diverged before
        its first evaluation also gets advice (`advice`, and a log line)."""
        outcome = run.recorder.outcome
        self.summary.update(**_results(outcome, run.task.target))
        advice = []
        if outcome.diverged_at and not outcome.evaluations:
            advice.append(divergence_advice(self.cfg, self.name))
        if run.probe is not None:
            seen = run.probe.crossing
            last = {k: v for k, v in (seen.last or {}).items() if "/" not in k}
            self.summary.update(diagnostics={"first_above_threshold": seen.first_above, "last": last or None})
            if outcome.diverged_at:
                advice.append(diagnosed_divergence(seen, outcome.diverged_at))
        if advice:
            self.summary.update(advice=" ".join(advice))
            self.log.warning("%s", self.summary.advice)
        if sum(p.numel() for p in run.model.parameters()) <= SMALL_MODEL:
            self.summary.update(
                final_parameters={n: p.detach().cpu().tolist() for n, p in run.model.named_parameters()}
            )

    def fail(self, exc: BaseException) -> None:
        """Mark the job failed with the error's one-line description (unless it has an outcome already)."""
        if self.summary.status not in ("completed", "diverged", "interrupted", "failed"):
            self.summary.update(status="failed", error=f"{type(exc).__name__}: {exc}")

    def close(self) -> dict[str, Any]:
        """Write the final summary.json, close the CSVs, tell the tracker; return the summary."""
        self.summary.update(wall_seconds=round(time.perf_counter() - self.started, 4), finished_at=_now())
        summary = self.summary.as_dict()
        self.records.write_summary(summary)
        self.records.close()
        if self.tracker is not None:
            self.tracker.finish(summary)
        return summary


def run_job(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Run one training job end to end and return its summary (also written to summary.json).

    Needs only the composed config: `optbench.config.compose.compose(...)` gives one without Hydra's runtime.
    """
    job = Job.open(cfg, out_dir)
    try:
        device = Device.of(cfg.device).resolve()
        with run_settings(cfg, device):
            run = job.setup(load_task(cfg, device), device)
            log.info(
                "%s on task %s (%s), %d iterations on %s",
                type(run.optimizer).__name__,
                run.task.name,
                run.task.data_name,
                run.iterations,
                run.device,
            )
            job.train(run)
            job.finish(run)
    except Exception as exc:
        job.fail(exc)
        raise
    finally:
        summary = job.close()
    return summary
