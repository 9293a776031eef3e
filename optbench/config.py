"""Where the Hydra configs live, and checks of the trainer's own settings."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from optbench.errors import OptbenchError

log = logging.getLogger(__name__)

_PACKAGE = Path(__file__).resolve().parent

# Settings that never change a run's numbers: left out of a run's fingerprint and of report labels.
NON_RESULT_KEYS = ("progress", "auto_report", "resume", "threads", "dataset.root")


def config_dir() -> str:
    """Absolute path of the `configs/` tree: shipped inside the wheel, or the checkout's top level."""
    packaged = _PACKAGE / "configs"  # a built wheel force-includes configs/ here
    return str(packaged if packaged.is_dir() else _PACKAGE.parent / "configs")


def config_fingerprint(cfg: DictConfig) -> str:
    """A short hash of everything in the job's config that can change its numbers."""
    container = OmegaConf.to_container(cfg, resolve=False)
    container.pop("hydra", None)
    for key in NON_RESULT_KEYS:
        *parents, leaf = key.split(".")
        node = container
        for parent in parents:
            node = node.get(parent, {})
        node.pop(leaf, None)
    return hashlib.sha256(json.dumps(container, sort_keys=True, default=str).encode()).hexdigest()[:16]


def check_settings(cfg: DictConfig, train_size: int) -> None:
    """Reject trainer settings that cannot work, with a message that says how to fix them."""
    for key in ("iterations", "batch_size", "eval_every"):
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise OptbenchError(
                f"{key}={value!r} must be a positive whole number, e.g. {key}=500."
            )
    factor = cfg.divergence_factor
    if factor is not None and (isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor <= 1):
        raise OptbenchError(
            f"divergence_factor={factor!r} must be a number above 1 (e.g. divergence_factor=1000), "
            "or null to stop only on non-finite losses."
        )
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int):
        raise OptbenchError(f"seed={cfg.seed!r} must be a whole number, e.g. seed=0.")
    if cfg.batch_size > train_size:
        raise OptbenchError(
            f"batch_size={cfg.batch_size} is larger than the training split ({train_size} "
            f"examples of dataset={cfg.dataset.name}). Use batch_size={train_size} or less."
        )
    if cfg.eval_every > cfg.iterations:
        log.warning(
            "eval_every=%d is larger than iterations=%d: the test split is evaluated only at the end.",
            cfg.eval_every, cfg.iterations,
        )
