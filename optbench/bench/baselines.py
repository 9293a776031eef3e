"""The baselines optbench ships (`optbench/baselines/<suite>/<optimizer>/`): a bench's own output, trimmed.

A baseline is the bench sweep dir of one optimizer, kept small enough to ship: per task its tuning.csv (every
stage-1 trial: setting, status, validation metric, steps to target) and its stage-2 runs (summary.json,
test.csv and valid.csv whole, train.csv thinned to about TRAIN_ROWS rows, and the Hydra config), plus a
provenance.json saying who made it, with what, where and how. The same code that reads run dirs reads it.
"""

from __future__ import annotations

import json
import logging
import platform
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf

from optbench import __version__
from optbench.bench.suite import Suite
from optbench.errors import OptbenchError
from optbench.reporting.bench import BENCH_JSON
from optbench.rundir.reader import discover, load_run
from optbench.rundir.writer import SUMMARY_JSON, TEST_CSV, TRAIN_CSV, TUNING_CSV, VALID_CSV, write_text_atomic
from optbench.runtime.device import cpu_kind

log = logging.getLogger(__name__)

BASELINES = Path(__file__).resolve().parents[1] / "baselines"  # optbench/baselines/, shipped in the package
PROVENANCE = "provenance.json"
FORMAT = 1  # provenance.json's `format`: bumped when the layout changes
TRAIN_ROWS = 100  # train.csv rows kept per stored run: enough for a curve, small enough to ship


@dataclass
class Baseline:
    """One shipped baseline: an optimizer's runs of a suite, and where they come from."""

    optimizer: str
    root: Path
    provenance: dict[str, Any]
    tasks: list[str] = field(default_factory=list)

    @property
    def source(self) -> str:
        """The provenance id the leaderboard's `source` column shows."""
        return str(self.provenance.get("id", self.root.name))


def folder_name(optimizer: str) -> str:
    """A baseline's folder for an optimizer config name (`deepobs/sgd` -> `deepobs__sgd`)."""
    return optimizer.replace("/", "__")


def load_baselines(suite: str, root: Path = BASELINES) -> tuple[list[Baseline], list[str]]:
    """The baselines shipped for `suite`, and a message for each one that cannot be read (it is left out)."""
    folder = root / suite
    if not folder.is_dir():
        return [], [f"optbench ships no baselines for suite={suite} (no folder {folder})"]
    found, problems = [], []
    for path in sorted(p for p in folder.iterdir() if p.is_dir()):
        try:
            provenance = json.loads((path / PROVENANCE).read_text())
            if not isinstance(provenance, dict) or provenance.get("format") != FORMAT:
                raise ValueError(f"not a format-{FORMAT} provenance record")
            optimizer = str(provenance["optimizer"])
            tasks = [t for t in provenance["tasks"] if (path / t).is_dir()]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problems.append(
                f"the shipped baseline {path} is missing or damaged ({type(exc).__name__}: {exc}); it is left out. "
                "Reinstall optbench, or regenerate it with `optbench bench --as-baseline optimizer=NAME`."
            )
            continue
        found.append(Baseline(optimizer, path, provenance, tasks))
    return found, problems


def library_version(target: str) -> dict[str, str]:
    """{distribution: version} of the package an optimizer class comes from (`torch.optim.AdamW` -> torch)."""
    module = target.split(".", 1)[0]
    try:
        return {module: metadata.version(module.replace("_", "-"))}
    except metadata.PackageNotFoundError:
        try:
            return {module: metadata.version(module)}
        except metadata.PackageNotFoundError:
            return {module: "unknown"}


def git_commit() -> str:
    """The checkout's commit (with `+dirty` when it has changes), or `unknown` outside a git checkout."""
    here = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "optbench", "configs"], cwd=here, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def record_start(sweep_dir: Path, suite: Suite, arguments: list[str]) -> None:
    """bench.json: the suite, the arguments, optbench's version and commit and the start time of a bench, so that
    runs stored later as a baseline say which code made them."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "suite": suite.name,
        "arguments": arguments,
        "optbench_version": __version__,
        "commit": git_commit(),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_text_atomic(sweep_dir / BENCH_JSON, json.dumps(record, indent=2) + "\n")


def record_notes(sweep_dir: Path, notes: list[str]) -> None:
    """Add the comparison's notes (baselines left out and why, version differences) to bench.json for the report."""
    try:
        record = json.loads((sweep_dir / BENCH_JSON).read_text())
    except (OSError, ValueError):
        record = {}
    record["notes"] = notes
    write_text_atomic(sweep_dir / BENCH_JSON, json.dumps(record, indent=2) + "\n")


def thinned(count: int, rows: int = TRAIN_ROWS) -> list[int]:
    """The indices of about `rows` evenly spaced rows out of `count`, the last one always among them."""
    step = max(1, -(-count // rows))
    return sorted({*range(0, count, step), count - 1}) if count else []


def arm_trials(tuning: pd.DataFrame, optimizer: str) -> pd.DataFrame:
    """The stage-1 trials of `optimizer`'s arm in a tuning.csv (all of them when it has one arm not named by it)."""
    if tuning.empty:
        return tuning
    mine = tuning[tuning.arm.astype(str).str.split().map(lambda words: f"optimizer={optimizer}" in words)]
    return mine if len(mine) or tuning.arm.nunique() > 1 else tuning


def write_choices(hydra_dir: Path, choices: dict[str, Any]) -> None:
    """A stored run's .hydra/hydra.yaml: only what the reader uses of it, the option chosen in each group."""
    OmegaConf.save(OmegaConf.create({"hydra": {"runtime": {"choices": choices}}}), hydra_dir / "hydra.yaml")


def staging_for(target: Path) -> Path:
    """An empty folder beside `target` to write a baseline into before it replaces `target`."""
    staging = target.with_name(f".{target.name}.new")
    shutil.rmtree(staging, ignore_errors=True)
    return staging


def publish(staging: Path, target: Path, provenance: dict[str, Any]) -> None:
    """Write the provenance into the staged baseline and put it in `target`'s place: a reader never sees half one."""
    write_text_atomic(staging / PROVENANCE, json.dumps(provenance, indent=2) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def _store_run(run_dir: Path, target: Path) -> None:
    """One stage-2 run, trimmed: summary and evaluation rows whole, train.csv thinned, the Hydra config."""
    (target / ".hydra").mkdir(parents=True, exist_ok=True)
    for name in (SUMMARY_JSON, TEST_CSV, VALID_CSV):
        if (run_dir / name).exists():
            shutil.copyfile(run_dir / name, target / name)
    if (run_dir / TRAIN_CSV).exists():
        frame = pd.read_csv(run_dir / TRAIN_CSV)
        write_text_atomic(target / TRAIN_CSV, frame.iloc[thinned(len(frame))].to_csv(index=False))
    for name in ("config.yaml", "overrides.yaml"):
        shutil.copyfile(run_dir / ".hydra" / name, target / ".hydra" / name)
    hydra = OmegaConf.load(run_dir / ".hydra" / "hydra.yaml")
    write_choices(target / ".hydra", OmegaConf.to_container(OmegaConf.select(hydra, "hydra.runtime.choices") or {}))


def store_baseline(sweep_dir: Path, suite: Suite, root: Path = BASELINES) -> list[Path]:
    """Turn a bench sweep dir of one or more optimizers into shipped baselines under `root`/<suite>/; the folders."""
    written = []
    try:
        started = json.loads((sweep_dir / BENCH_JSON).read_text())
    except (OSError, ValueError):
        started = {}
    commit = started.get("commit") or git_commit()
    given = [a for a in started.get("arguments", []) if not a.lstrip("+").startswith("suite=")]
    command = shlex.join(["optbench", "bench", f"suite={suite.name}", *given, f"hydra.sweep.dir={sweep_dir}"])
    runs = [load_run(path) for path in discover([sweep_dir])]
    for optimizer in dict.fromkeys(run.choices.get("optimizer", "?") for run in runs):
        mine = [run for run in runs if run.choices.get("optimizer") == optimizer]
        first = mine[0]
        target = root / suite.name / folder_name(optimizer)
        staging = staging_for(target)
        tasks: dict[str, Any] = {}
        for task in suite.tasks:
            task_runs = [run for run in mine if run.path.relative_to(sweep_dir.resolve()).parts[0] == task.name]
            if not task_runs and not (sweep_dir / task.name / TUNING_CSV).exists():
                continue  # the task did not run (stored when its trials ran and none completed)
            (staging / task.name).mkdir(parents=True)
            trials = arm_trials(pd.read_csv(sweep_dir / task.name / TUNING_CSV), optimizer)
            write_text_atomic(staging / task.name / TUNING_CSV, trials.to_csv(index=False))
            for n, run in enumerate(sorted(task_runs, key=lambda r: r.summary.get("seed", 0))):
                _store_run(run.path, staging / task.name / str(n))
            tasks[task.name] = {"protocol": task.protocol(), "overrides": list(task.overrides)}
        target_cls = str(OmegaConf.select(first.config, "optimizer._target_", default="?"))
        provenance = {
            "format": FORMAT,
            "id": f"optbench {__version__} ({commit[:12]}), {first.summary.get('device_name', '?')}",
            "suite": suite.name,
            "optimizer": optimizer,
            "optimizer_class": target_cls,
            "optbench_version": __version__,
            "commit": commit,
            "torch_version": first.summary.get("torch_version"),
            "libraries": library_version(target_cls),
            "python": platform.python_version(),
            "device": first.summary.get("device"),
            "device_name": first.summary.get("device_name"),
            "threads": first.summary.get("threads"),
            "cpu_kind": cpu_kind(),  # which CPU kernels ran: a rerun matches bit for bit where this matches
            "date": started.get("started_at") or datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": command,  # what ran the runs; `optbench bench --store-baseline=DIR` stored them
            "tasks": tasks,
        }
        publish(staging, target, provenance)
        written.append(target)
    if not written:
        raise OptbenchError(f"{sweep_dir} holds no bench runs to store as baselines: run `optbench bench` first.")
    return written
