"""`optbench bench`: run a suite's protocol for optimizers and compare them with the shipped baselines.

Usage (`optbench bench --help`):

- `optbench bench optimizer=NAME [suite=cpu] [any override]`: run, compare, report (into bench/DATE/TIME)
- `optbench bench --list`: the suites, their tasks, the shipped baselines
- `optbench bench --as-baseline optimizer=NAME [suite=cpu]`: run, then store the runs as the suite's baseline
- `optbench bench --store-baseline=SWEEP_DIR`: store a finished bench's runs as baselines
- `optbench bench --compare=SWEEP_DIR`: compare a finished bench again (e.g. with newer baselines): its tables
  and report rewritten
- `--baselines-dir=DIR` (with any of them): compare with, and store into, DIR's baselines instead of those
  optbench ships
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from pathlib import Path

from omegaconf import OmegaConf

from optbench.bench.baselines import BASELINES, load_baselines, store_baseline
from optbench.bench.suite import Suite, check_bench_arguments, load_suite, shipped_suite, suite_names
from optbench.errors import OptbenchError

DEFAULT_SUITE = "cpu"
# Hydra's options that take a value: they go before the overrides (its parser wants overrides last).
VALUED_OPTIONS = {"--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn", "--package", "-p"}


def hydra_argv(suite: str, rest: list[str]) -> list[str]:
    """The Hydra command line of a bench: its options first, then `-m +suite=NAME` and the overrides."""
    options, overrides, values = [], [], iter(rest)
    for token in values:
        if token in VALUED_OPTIONS:
            options += [token, next(values, "")]
        elif token.startswith("-"):
            options.append(token)
        else:
            overrides.append(token)
    return ["optbench", *options, "-m", f"+suite={suite}", *overrides]


def listing() -> str:
    """What `optbench bench --list` prints: each suite, its tasks with their protocol, and its baselines."""
    lines = []
    for name in suite_names():
        suite = shipped_suite(name)
        lines.append(f"suite={name}{' (default)' if name == DEFAULT_SUITE else ''}: {suite.description}")
        for task in suite.tasks:
            searched = ", ".join(f"{k} {v}" for k, v in task.params.items())
            lines.append(
                f"  {task.name}: {' '.join(task.overrides)}; {task.trials} {task.search} trials over {searched} on "
                f"the {task.split} split (select {task.select}), seeds {task.seed_list()}"
            )
        baselines, _ = load_baselines(name)
        shipped = ", ".join(f"{b.optimizer} [{b.source}]" for b in baselines) or "none shipped"
        lines.append(f"  baselines: {shipped}")
    return "\n".join(lines)


def _finished(sweep_dir: Path) -> Suite:
    """The suite a finished bench ran, from its sweep dir's multirun.yaml."""
    try:
        multirun = OmegaConf.load(sweep_dir / "multirun.yaml")
        return load_suite(OmegaConf.select(multirun, "hydra.sweeper.suite"))
    except (OSError, ValueError, OptbenchError) as exc:
        raise OptbenchError(
            f"{sweep_dir} is not a bench's sweep dir ({exc}): give the folder `optbench bench` wrote."
        ) from None


def store(sweep_dir: Path, folder: Path) -> int:
    """Store a finished bench's runs (its sweep dir) as baselines under `folder`; the exit status."""
    for written in store_baseline(sweep_dir, _finished(sweep_dir), folder):
        print(f"baseline stored in {written}")
    return 0


def compare(sweep_dir: Path, folder: Path) -> int:
    """Compare a finished bench with the baselines under `folder` again: its tables and report rewritten."""
    from optbench.bench.verdict import write_bench
    from optbench.reporting.build import build_report

    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the notes and the verdict, as a bench logs them
    suite = _finished(sweep_dir)
    tasks = [task.name for task in suite.tasks if (sweep_dir / task.name).is_dir()]
    write_bench(sweep_dir, suite, tasks, {}, folder)
    build_report([sweep_dir], sweep_dir / "report")
    print(f"{sweep_dir / 'leaderboard.csv'}, {sweep_dir / 'verdicts.csv'} and {sweep_dir / 'report'} rewritten")
    return 0


def _split_arguments(argv: list[str]) -> tuple[str, list[str], bool, Path]:
    """(the suite, the other arguments, --as-baseline, the baselines' folder)."""
    suite, rest, as_baseline, folder = DEFAULT_SUITE, [], False, BASELINES
    for argument in argv:
        if argument == "--as-baseline":
            as_baseline = True
        elif argument.startswith("--baselines-dir="):
            folder = Path(argument.split("=", 1)[1]).expanduser().resolve()
            rest.append(f"hydra.sweeper.baselines={folder}")
        elif argument.lstrip("+").startswith("suite="):
            suite = argument.split("=", 1)[1]
        else:
            rest.append(argument)
    return suite, rest, as_baseline, folder


def _check_suite(suite: str, rest: list[str]) -> None:
    """An unknown suite gets one message listing the known ones (a --config-dir may bring its own)."""
    if suite in suite_names() or any(a in ("--config-dir", "-cd") or a.startswith("--config-dir=") for a in rest):
        return
    raise OptbenchError(
        f"suite={suite!r} is not a suite optbench knows: use one of {', '.join(suite_names())} "
        "(`optbench bench --list` describes them), or bring your own as suite/NAME.yaml in a --config-dir."
    )


def main(argv: list[str]) -> int:
    """Run `optbench bench`; the exit status."""
    if "--list" in argv:
        print(listing())
        return 0
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    suite, rest, as_baseline, folder = _split_arguments(argv)
    try:
        for option, action in (("--store-baseline=", store), ("--compare=", compare)):
            given = next((a.split("=", 1)[1] for a in rest if a.startswith(option)), None)
            if given is not None:
                return action(Path(given).expanduser(), folder)
        _check_suite(suite, rest)
        check_bench_arguments(rest, suite)
    except OptbenchError as exc:
        print(f"optbench: error: {exc}", file=sys.stderr)
        return 2
    sweep_dir = next((a.split("=", 1)[1] for a in rest if a.startswith("hydra.sweep.dir=")), None)
    if sweep_dir is None:
        sweep_dir = datetime.now().strftime("bench/%Y-%m-%d/%H-%M-%S")
        rest.append(f"hydra.sweep.dir={sweep_dir}")
    from optbench.train import entry

    sys.argv = hydra_argv(suite, rest)
    entry()
    if not as_baseline:
        return 0
    try:
        return store(Path(sweep_dir), folder)
    except OptbenchError as exc:
        print(f"optbench: error: {exc}", file=sys.stderr)
        return 2
