"""`optbench bench`: run a suite's protocol for optimizers and compare them with the shipped baselines.

optbench bench optimizer=NAME [suite=cpu] [any override]   run, compare, report (into bench/DATE/TIME)
optbench bench --list                                        the suites, their tasks, the shipped baselines
optbench bench --as-baseline optimizer=NAME [suite=cpu]      run, then store the runs as the suite's baseline
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from omegaconf import OmegaConf

from optbench.bench.baselines import BASELINES, load_baselines, store_baseline
from optbench.bench.suite import check_bench_arguments, load_suite, suite_names
from optbench.config.sources import config_dir
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
        suite = load_suite(OmegaConf.load(Path(config_dir()) / "suite" / f"{name}.yaml").hydra.sweeper.suite)
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


def store(sweep_dir: Path, folder: Path) -> int:
    """Store a finished bench's runs (its sweep dir) as baselines under `folder`; the exit status."""
    try:
        multirun = OmegaConf.load(sweep_dir / "multirun.yaml")
        suite = load_suite(OmegaConf.select(multirun, "hydra.sweeper.suite"))
    except (OSError, ValueError) as exc:
        print(
            f"optbench: error: {sweep_dir} is not a bench's sweep dir ({exc}): give the folder `optbench bench` wrote.",
            file=sys.stderr,
        )
        return 2
    for written in store_baseline(sweep_dir, suite, folder):
        print(f"baseline stored in {written}")
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
    stored = next((a.split("=", 1)[1] for a in rest if a.startswith("--store-baseline=")), None)
    if stored is not None:
        return store(Path(stored).expanduser(), folder)
    try:
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
    return store(Path(sweep_dir), folder) if as_baseline else 0
