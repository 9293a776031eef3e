"""`optbench export tensorboard|mlflow|wandb DIR...`: replay finished runs' files into a tracker.

Each run's train.csv, valid.csv and test.csv rows are sent in the order a live run sends them (the
training rows up to an evaluation, then that evaluation), so a replayed run reads as a logged one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from optbench.config.sources import config_dir
from optbench.errors import OptbenchError
from optbench.logger import KINDS, Tracker, build_tracker, run_info
from optbench.rundir.reader import Run, discover, load_run
from optbench.rundir.writer import COLUMNS, TRAIN_COLUMNS


def parser() -> argparse.ArgumentParser:
    """The `optbench export` argument parser."""
    p = argparse.ArgumentParser(
        prog="optbench export",
        description="Replay finished optbench runs (their train.csv, valid.csv, test.csv and summary.json) into "
        "an experiment tracker, as if they had been run with logger=KIND. A DIR holding several runs "
        "(a sweep) becomes one group: a TensorBoard folder, an MLflow experiment, a W&B group.",
        epilog="example: optbench export tensorboard multirun/2026-11-21/10-00-00 && "
        "tensorboard --logdir multirun/2026-11-21/10-00-00/tensorboard",
    )
    p.add_argument("kind", choices=KINDS, help="the tracker")
    p.add_argument("paths", nargs="+", type=Path, help="run dirs, sweep dirs, or folders holding them")
    p.add_argument("--log-dir", help="tensorboard: where the event folders go (default: DIR/tensorboard)")
    p.add_argument("--tracking-uri", help="mlflow: a server or store URI (default: sqlite:///DIR/mlflow.db)")
    p.add_argument("--experiment", help="mlflow: the experiment (default: DIR's path)")
    p.add_argument("--project", help="wandb: the project (default: optbench)")
    p.add_argument("--entity", help="wandb: your user or team")
    p.add_argument("--mode", choices=("offline", "online"), help="wandb: offline (default) or online")
    p.add_argument("--dir", help="wandb: where its wandb/ folder goes (default: DIR)")
    return p


def preset(kind: str) -> DictConfig:
    """The logger=KIND preset (configs/logger/KIND.yaml): its keys are the options that tracker takes."""
    return OmegaConf.load(Path(config_dir()) / "logger" / f"{kind}.yaml")


def logger_options(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """The logger=KIND preset's options with the command line's flags applied (a flag is an option's name)."""
    options = preset(kind)
    for flag, value in vars(args).items():
        if value is None or flag in ("kind", "paths"):
            continue
        if flag not in options:
            owner = next(other for other in KINDS if flag in preset(other))
            raise OptbenchError(
                f"--{flag.replace('_', '-')} is an option of `optbench export {owner}`, not of "
                f"`optbench export {kind}`. Drop it."
            )
        options[flag] = value
    return options


def replay(tracker: Tracker, run: Run, root: Path) -> None:
    """Send one run's rows and summary to `tracker`, as a live run would have (evaluations in between)."""
    sweep = None if run.path == root.resolve() else root  # DIR is this run itself, or a sweep holding it
    tracker.open(run_info(run.config, run.path, run.summary, sweep, run.overrides))
    evaluations = [("valid", run.valid), ("test", run.test)] if run.valid is not None else [("test", run.test)]
    done = 0
    for iteration in run.test.iteration.tolist():
        _send(tracker, "train", run.train[run.train.iteration.between(done + 1, iteration)], TRAIN_COLUMNS)
        for split, frame in evaluations:
            _send(tracker, split, frame[frame.iteration == iteration], COLUMNS)
        done = iteration
    _send(tracker, "train", run.train[run.train.iteration > done], TRAIN_COLUMNS)  # after the last evaluation
    tracker.finish(run.summary)


def _send(tracker: Tracker, split: str, frame: pd.DataFrame, columns: tuple[str, ...]) -> None:
    """Hand `frame`'s rows to the tracker as CSV columns (an empty cell is a NaN here: sent as missing)."""
    if len(frame):
        tracker.rows(split, frame.iteration.tolist(), {c: frame[c].tolist() for c in columns[1:] if c in frame})


def export(kind: str, paths: list[Path], options: dict[str, Any]) -> list[tuple[Run, Tracker]]:
    """Replay every run under `paths` into a new tracker run each; returns them with their trackers."""
    done = []
    for root in paths:
        for path in discover([root]):
            run = load_run(path)
            tracker = build_tracker(OmegaConf.create({**options, "kind": kind}))
            replay(tracker, run, root)
            done.append((run, tracker))
    return done


def main(argv: list[str]) -> int:
    """Run `optbench export` with `argv`; returns the exit status."""
    args = parser().parse_args(argv)
    try:
        exported = export(args.kind, args.paths, logger_options(args.kind, args))
    except OptbenchError as exc:
        print(f"optbench export: error: {exc}", file=sys.stderr)
        return 2
    failed = [run for run, tracker in exported if tracker.failed]
    print(f"exported {len(exported) - len(failed)} of {len(exported)} runs to {args.kind}")
    for run in failed:
        print(f"note: {run.path}: the tracker failed (see the warning above); nothing more was sent", file=sys.stderr)
    return 1 if failed else 0
