"""Where the Hydra configs live, and checks of the trainer's own settings."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from optbench.device import resolved_type
from optbench.errors import OptbenchError

log = logging.getLogger(__name__)

_PACKAGE = Path(__file__).resolve().parent

# Settings that never change a run's numbers: left out of a run's fingerprint and of report labels.
NON_RESULT_KEYS = ("progress", "auto_report", "resume", "threads", "dataset.root", "logger")


def config_dir() -> str:
    """Absolute path of the `configs/` tree: shipped inside the wheel, or the checkout's top level."""
    packaged = _PACKAGE / "configs"  # a built wheel force-includes configs/ here
    return str(packaged if packaged.is_dir() else _PACKAGE.parent / "configs")


def config_fingerprint(cfg: DictConfig, ignore: tuple[str, ...] = ()) -> str:
    """A short hash of everything in the job's config that can change its numbers (less the `ignore` keys).

    `device=auto` counts as the device it resolves to on this host, so `resume=true` never takes a
    CPU run for a GPU run of the same config (or the other way round).
    """
    container = OmegaConf.to_container(cfg, resolve=False)
    container.pop("hydra", None)
    if isinstance(container.get("device"), dict) and "type" in container["device"]:
        container["device"]["type"] = resolved_type(str(container["device"]["type"]))
    for key in (*NON_RESULT_KEYS, *ignore):
        *parents, leaf = key.split(".")
        node = container
        for parent in parents:
            node = node.get(parent, {})
        node.pop(leaf, None)
    return hashlib.sha256(json.dumps(container, sort_keys=True, default=str).encode()).hexdigest()[:16]


def user_config_dirs(sources: Any) -> list[Path]:
    """The config dirs the user added (`--config-dir`), from Hydra's `hydra.runtime.config_sources`."""
    return [Path(source["path"]) for source in sources or []
            if source.get("schema") == "file" and source.get("provider") != "main"]


def shadowed_user_configs(sources: Any) -> list[str]:
    """The configs in the user's config dirs (`--config-dir`) that a shipped config of the same group
    and name hides: Hydra searches optbench's own configs first."""
    shipped = Path(config_dir())
    hidden = []
    for root in user_config_dirs(sources):
        for path in sorted(root.rglob("*.yaml")):
            relative = path.relative_to(root)
            if relative.parts[0] != "config.yaml" and (shipped / relative).exists():
                hidden.append(str(path))
    return hidden


def instantiate_checked(node: DictConfig, what: str, hint: str, **kwargs: Any) -> Any:
    """`instantiate(node, **kwargs)`; a failure becomes one OptbenchError saying `what` failed, then `hint`."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as exc:
        if isinstance(exc.__cause__, OptbenchError):
            raise exc.__cause__ from None  # our own message, without Hydra's wrapping
        raise OptbenchError(f"{what} could not be built from its configuration ({exc}). {hint}") from exc


def positive_int(key: str, value: object, example: str | None = None) -> int:
    """`value` if it is a whole number >= 1, else an error naming `key` and an example fix."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise OptbenchError(f"{key}={value!r} must be a positive whole number, e.g. {example or f'{key}=500'}.")
    return value


def check_length_overrides(overrides: list[str], cfg: DictConfig | None = None) -> None:
    """Training length is iterations or epochs: refuse both given on the command line. `iterations`
    given alone replaces a task preset's `epochs` (in `cfg`), as the user asked for steps."""
    keys = {override.split("=", 1)[0].lstrip("+~") for override in overrides}
    if {"iterations", "epochs"} <= keys:
        raise OptbenchError(
            "Both iterations=... and epochs=... were given: give one of them (e.g. epochs=20 "
            "batch_size=128, or iterations=3000). epochs, when set, replaces iterations."
        )
    if cfg is not None and "iterations" in keys and cfg.get("epochs") is not None:
        cfg.epochs = None


@dataclass(frozen=True)
class Budget:
    """How long a job trains and how often it evaluates, in optimizer steps."""

    iterations: int
    eval_every: int


EPOCH = "epoch"  # eval_every=epoch: evaluate after every pass over the training split (DeepOBS)


def check_settings(cfg: DictConfig, train_size: int | None, steps_per_epoch: int | None = None,
                   full_batch: bool = False) -> Budget:
    """Reject trainer settings that cannot work; return the job's budget in steps.

    `train_size` is None for tasks without a dataset (2-D functions): batch_size and epochs do not
    apply. `steps_per_epoch` is the task's (its batching may drop an epoch's last partial batch).
    """
    for key in ("iterations", "batch_size"):
        positive_int(key, cfg[key])
    if cfg.eval_every != EPOCH:
        positive_int("eval_every", cfg.eval_every, "eval_every=500, or eval_every=epoch")
    factor = cfg.divergence_factor
    if factor is not None and (isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor <= 1):
        raise OptbenchError(
            f"divergence_factor={factor!r} must be a number above 1 (e.g. divergence_factor=1000), "
            "or null to stop only on non-finite losses."
        )
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int):
        raise OptbenchError(f"seed={cfg.seed!r} must be a whole number, e.g. seed=0.")
    task = OmegaConf.select(cfg, "task.name")
    iterations = cfg.iterations
    if train_size is None:
        for key, value, fix in (("epochs", cfg.epochs, "iterations=... instead (e.g. iterations=500)"),
                                ("eval_every", cfg.eval_every, "eval_every in steps (e.g. eval_every=25)")):
            if value is not None and (key == "epochs" or value == EPOCH):
                raise OptbenchError(f"{key}={value} needs a task with a training split; task={task} has none. "
                                    f"Give {fix}.")
        return _budget(cfg, iterations, cfg.eval_every)
    batch_size = train_size if full_batch else cfg.batch_size
    if full_batch:
        log.info("task=%s trains full-batch: every step uses all %d examples", task, train_size)
    elif batch_size > train_size:
        raise OptbenchError(
            f"batch_size={batch_size} is larger than the training split ({train_size} "
            f"examples of task={task}). Use batch_size={train_size} or less."
        )
    steps_per_epoch = steps_per_epoch or math.ceil(train_size / batch_size)
    if cfg.epochs is not None:
        iterations = positive_int("epochs", cfg.epochs, "epochs=20") * steps_per_epoch
        log.info("epochs=%d: %d iterations of batch_size=%d", cfg.epochs, iterations, batch_size)
    return _budget(cfg, iterations, steps_per_epoch if cfg.eval_every == EPOCH else cfg.eval_every)


def _budget(cfg: DictConfig, iterations: int, eval_every: int) -> Budget:
    if eval_every > iterations:
        log.warning(
            "eval_every=%s is larger than iterations=%d: the test split is evaluated only at the end.",
            cfg.eval_every, iterations,
        )
    return Budget(iterations, eval_every)


def compose(*overrides: str) -> DictConfig:
    """The job config for command-line style `overrides`, composed without running Hydra's app.

    It keeps Hydra's `hydra` node, so `run_job` knows which option of each group was chosen.
    """
    from hydra import compose as hydra_compose, initialize_config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = hydra_compose("config", overrides=list(overrides), return_hydra_config=True)
    check_length_overrides(list(overrides), cfg)
    return cfg
