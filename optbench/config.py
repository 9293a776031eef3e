"""Where the Hydra configs live, composing them, and a config's fingerprint."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
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


def hydra_node(cfg: DictConfig) -> DictConfig | None:
    """The job's `hydra` node: the config's own (a vectorised sweep's jobs, `compose(...,
    return_hydra_config=True)`), else Hydra's runtime one; None outside Hydra (the Python API)."""
    if "hydra" in cfg:
        return cfg.hydra
    return HydraConfig.get() if HydraConfig.initialized() else None


def group_choices(cfg: DictConfig) -> dict[str, str]:
    """The option chosen in each config group ({} when the config has no Hydra runtime)."""
    node = hydra_node(cfg)
    return dict(OmegaConf.select(node, "runtime.choices", default={}) or {}) if node is not None else {}


def optimizer_name(cfg: DictConfig, choices: dict[str, str]) -> str:
    """The optimizer's config name (`adam`, `scratch/sgd`), or its class name when none was chosen by name."""
    return choices.get("optimizer") or str(cfg.optimizer.get("_target_", "?")).rsplit(".", 1)[-1].lower()


def user_config_dirs(sources: Any) -> list[Path]:
    """The config dirs the user added (`--config-dir`), from Hydra's `hydra.runtime.config_sources`."""
    return [
        Path(source["path"])
        for source in sources or []
        if source.get("schema") == "file" and source.get("provider") != "main"
    ]


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
