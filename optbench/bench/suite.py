"""A suite (`configs/suite/<name>.yaml`): the fixed protocol of `optbench bench`, task by task.

Each task of a suite fixes what a comparison needs to be fair: the task preset and its budget (as overrides),
the search space and the number of stage-1 trials, the tuning seed, the reported seeds, the selection rule and
the split it selects on. The tune sweeper runs that protocol; `identity` says whether two runs followed the
same one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from optbench.config.compose import flatten, override_key
from optbench.config.fingerprint import without_neutral
from optbench.config.sources import config_dir
from optbench.errors import OptbenchError

# The keys of a suite task's protocol, with the tune sweeper's meaning (configs/hydra/sweeper/tune.yaml).
PROTOCOL_KEYS = ("search", "trials", "params", "select", "split", "seeds", "tuning_seed", "search_seed", "digits")
# The job settings that make a task what it is: a run's config under these (less `dataset.root`, where the
# files are) must match for two runs to be compared. The optimizer, its schedule and Lookahead are what is
# compared; the seed, device and threads change how, not what, is measured.
TASK_KEYS = ("task", "dataset", "model", "iterations", "epochs", "batch_size", "eval_every", "validation")
NOT_TASK_KEYS = ("root",)  # where the data lives (dataset.root, and the task's copy of it)


@dataclass(frozen=True)
class SuiteTask:
    """One task of a suite: the job overrides that make it, and the tuning protocol run on it."""

    name: str
    overrides: tuple[str, ...]
    search: str = "halton"
    trials: int = 8
    params: dict[str, str] = field(default_factory=dict)
    select: str = "final"
    split: str = "validation"
    seeds: Any = 5
    tuning_seed: int = 1000
    search_seed: int = 0
    digits: int = 3

    def protocol(self) -> dict[str, Any]:
        """The tuning protocol's settings, as the tune sweeper takes them (and as a baseline records them)."""
        values = asdict(self)
        return {key: values[key] for key in PROTOCOL_KEYS}

    def seed_list(self) -> list[int]:
        """The reported seeds: 0..seeds-1, or the list given."""
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


@dataclass(frozen=True)
class Suite:
    """A named benchmark protocol: its tasks in order and what it is for."""

    name: str
    description: str
    tasks: tuple[SuiteTask, ...]
    clock: str = "steps"  # what "time to target" counts in the verdict: steps (seconds are shown where comparable)

    def task(self, name: str) -> SuiteTask:
        """The suite's task called `name`."""
        for task in self.tasks:
            if task.name == name:
                return task
        raise OptbenchError(
            f"suite={self.name} has no task {name!r}: its tasks are {', '.join(t.name for t in self.tasks)}."
        )


def suite_names() -> list[str]:
    """The suites optbench ships (configs/suite/*.yaml)."""
    return sorted(path.stem for path in (Path(config_dir()) / "suite").glob("*.yaml"))


def shipped_suite(name: str) -> Suite:
    """A suite optbench ships, read from configs/suite/NAME.yaml (without composing a job)."""
    return load_suite(OmegaConf.load(Path(config_dir()) / "suite" / f"{name}.yaml").hydra.sweeper.suite)


def load_suite(node: Any) -> Suite:
    """The suite of a `hydra.sweeper.suite` node (or a plain mapping), checked: a clear error names what is wrong."""
    values = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    if not isinstance(values, dict) or not values.get("name") or not isinstance(values.get("tasks"), dict):
        raise OptbenchError(
            "optbench bench needs a suite: give suite=NAME (one of "
            f"{', '.join(suite_names())}; `optbench bench --list` describes them). A suite of your own is a YAML "
            "file suite/NAME.yaml in a --config-dir, laid out as configs/suite/cpu.yaml."
        )
    name = str(values["name"])
    tasks = []
    for task_name, spec in values["tasks"].items():
        spec = dict(spec or {})
        unknown = set(spec) - {"overrides", *PROTOCOL_KEYS}
        if unknown or not isinstance(spec.get("overrides"), list):
            raise OptbenchError(
                f"suite={name}, task {task_name}: "
                + (f"unknown keys {sorted(unknown)}" if unknown else "`overrides` must be a list of job overrides")
                + f". A suite task takes `overrides` (e.g. [task={task_name}, iterations=1000]) and the tune "
                f"sweeper's {', '.join(PROTOCOL_KEYS)}."
            )
        overrides = tuple(str(o) for o in spec.pop("overrides"))
        tasks.append(SuiteTask(str(task_name), overrides, **{k: v for k, v in spec.items()}))
    if not tasks:
        raise OptbenchError(f"suite={name} has no tasks: list at least one under `tasks:`.")
    return Suite(name, str(values.get("description", "")), tuple(tasks), str(values.get("clock", "steps")))


def identity(config: DictConfig | dict, protocol: dict[str, Any]) -> dict[str, Any]:
    """What must match for two runs of a task to be compared: the job settings that define the task (TASK_KEYS),
    flattened to `key: value`, and the protocol they were tuned and seeded with (`protocol.*`)."""
    if OmegaConf.is_config(config):
        config = OmegaConf.masked_copy(config, [key for key in config if key in TASK_KEYS])  # not Hydra's own node
        try:
            config = OmegaConf.to_container(config, resolve=True)
        except Exception:  # an interpolation that only resolves inside its run (an env variable): keep it as written
            config = OmegaConf.to_container(config, resolve=False)
    flat = without_neutral(
        {
            key: value
            for key, value in flatten({key: config.get(key) for key in TASK_KEYS}).items()
            if key.rsplit(".", 1)[-1] not in NOT_TASK_KEYS  # the task's own copy of the dataset node too
        }
    )
    flat.update(flatten(json.loads(json.dumps(protocol, default=str)), "protocol"))
    return flat


def differing(mine: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """The keys whose values differ between two identities (or that only one has), sorted."""
    return sorted(key for key in set(mine) | set(theirs) if mine.get(key, "<unset>") != theirs.get(key, "<unset>"))


def check_bench_arguments(arguments: list[str], suite: str) -> None:
    """What `optbench bench` is given: an optimizer (or several), and overrides that leave the suite's tasks and
    seeds to it."""
    # Hydra's own settings (hydra.*, its options) and the `--config-dir` value are not the jobs'.
    arguments = [a for a in arguments if "=" in a and not override_key(a).startswith(("hydra", "-"))]
    keys = [override_key(a) for a in arguments]
    if "optimizer" not in keys:
        raise OptbenchError(
            "optbench bench needs the optimizer to benchmark: optimizer=NAME (e.g. `optbench bench optimizer=adopt`, "
            "or optimizer=a,b for several; your own: a YAML in a --config-dir, see docs/extending.md)."
        )
    for argument, key in zip(arguments, keys):
        if key in ("task", "seed"):
            raise OptbenchError(
                f"optbench bench runs the tasks and seeds suite={suite} fixes, so {argument} cannot be given. "
                "Run only some of its tasks with hydra.sweeper.tasks=[NAME,...]; for a task of your own, write a "
                "suite (configs/suite/cpu.yaml is the model) or tune it with hydra/sweeper=tune."
            )
        if key != "optimizer" and _is_sweep(argument):
            raise OptbenchError(
                f"optbench bench compares optimizers: only optimizer=a,b may list several values ({argument} does). "
                "Bench one setting at a time, or tune it with hydra/sweeper=tune."
            )


def _is_sweep(argument: str) -> bool:
    """Whether a command-line override lists several values (`a=1,2`, `a=range(3)`), as Hydra's parser reads it
    (`model.hidden=[100,100]` is one value); an override that does not parse is left to Hydra's own message."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        return OverridesParser.create().parse_override(argument).is_sweep_override()
    except HydraException:
        return False
