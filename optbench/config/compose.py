"""Composing the job config: with Hydra's runtime or without it (`compose`), reading what it chose, and
flattening it to dotted keys."""

from __future__ import annotations

from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from optbench.config.sources import config_dir
from optbench.errors import OptbenchError


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """A nested dict/list as one level of dotted keys: {"optimizer": {"lr": 0.1}} -> {"optimizer.lr": 0.1}."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, (list, tuple)) and node and any(isinstance(v, (dict, list)) for v in node):
        items = ((str(i), v) for i, v in enumerate(node))
    else:
        return {prefix: node}
    flat: dict[str, Any] = {}
    for key, value in items:
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def hydra_node(cfg: DictConfig) -> DictConfig | None:
    """The job's `hydra` node: the config's own (a vectorised sweep's jobs, `compose(...,
    return_hydra_config=True)`), else Hydra's runtime one; None outside Hydra (the Python API)."""
    if "hydra" in cfg:
        return cfg.hydra
    return HydraConfig.get() if HydraConfig.initialized() else None


def command_line_overrides(cfg: DictConfig) -> list[str]:
    """The overrides the job was given on its command line (`hydra.overrides.task`); [] outside Hydra."""
    node = hydra_node(cfg)
    return list(OmegaConf.select(node, "overrides.task", default=[]) or []) if node is not None else []


def group_choices(cfg: DictConfig) -> dict[str, str]:
    """The option chosen in each config group ({} when the config has no Hydra runtime)."""
    node = hydra_node(cfg)
    return dict(OmegaConf.select(node, "runtime.choices", default={}) or {}) if node is not None else {}


def optimizer_name(cfg: DictConfig, choices: dict[str, str]) -> str:
    """The optimizer's config name (`adam`, `scratch/sgd`), or its class name when none was chosen by name."""
    return choices.get("optimizer") or str(cfg.optimizer.get("_target_", "?")).rsplit(".", 1)[-1].lower()


def override_key(override: str) -> str:
    """The config key a command-line override sets: `+optimizer.lr=0.1` and `~logger` name `optimizer.lr`, `logger`."""
    return override.split("=", 1)[0].lstrip("+~")


def check_length_overrides(overrides: list[str], cfg: DictConfig | None = None) -> None:
    """Training length is iterations or epochs: refuse both given on the command line. `iterations`
    given alone replaces a task preset's `epochs` (in `cfg`), as the user asked for steps."""
    keys = {override_key(override) for override in overrides}
    if {"iterations", "epochs"} <= keys:
        raise OptbenchError(
            "Both iterations=... and epochs=... were given: give one of them (e.g. epochs=20 "
            "batch_size=128, or iterations=3000). epochs, when set, replaces iterations."
        )
    if cfg is not None and "iterations" in keys and cfg.get("epochs") is not None:
        cfg.epochs = None


def compose(*overrides: str) -> DictConfig:
    """The job config for command-line style `overrides`, composed without running Hydra's app.

    It keeps Hydra's `hydra` node, so `run_job` knows which option of each group was chosen.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = hydra_compose("config", overrides=list(overrides), return_hydra_config=True)
    check_length_overrides(list(overrides), cfg)
    return cfg
