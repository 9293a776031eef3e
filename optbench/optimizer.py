"""Optimizer group: check and build the configured optimizer (a `_partial_` node) for a model."""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Iterable
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from optbench.errors import OptbenchError
from optbench.optim import Lookahead

# Ranges torch.optim does not check itself: momentum >= 1 never converges.
RANGES = {"momentum": (0.0, 1.0), "dampening": (0.0, 1.0)}


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_value(name: str, key: str, value: Any, default: Any) -> None:
    """Compare one hyper-parameter with the type of its constructor default and with RANGES."""
    where = f"optimizer.{key}={value!r}"
    if isinstance(default, bool) and not isinstance(value, bool):
        raise OptbenchError(f"{where} must be true or false (optimizer={name}).")
    if _is_number(default) and not _is_number(value):
        raise OptbenchError(f"{where} must be a number, e.g. optimizer.{key}={default} (the default of optimizer={name}).")
    if isinstance(default, tuple) and not (isinstance(value, list) and len(value) == len(default)
                                           and all(_is_number(v) for v in value)):
        example = ",".join(str(float(v)) for v in default)
        raise OptbenchError(f"{where} must be a list of {len(default)} numbers, e.g. optimizer.{key}=[{example}].")
    if key in RANGES and _is_number(value):
        low, high = RANGES[key]
        if not low <= value < high:
            raise OptbenchError(f"{where} is outside [{low:g}, {high:g}): use a value such as optimizer.{key}=0.9.")


def check_hyperparameters(cfg: DictConfig, name: str) -> None:
    """Reject hyper-parameters of the wrong type (by the constructor's defaults) or out of range."""
    try:
        cls = get_class(cfg._target_)
    except (ImportError, ValueError, AttributeError) as exc:  # what get_class raises for a bad _target_
        raise OptbenchError(f"optimizer={name}: _target_={cfg._target_!r} cannot be imported ({exc}).") from exc
    defaults = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()}
    for key, value in OmegaConf.to_container(cfg, resolve=True).items():
        if not key.startswith("_") and key in defaults:
            _check_value(name, key, value, defaults[key])


def build_optimizer(cfg: DictConfig, params: Iterable[torch.nn.Parameter], name: str,
                    lookahead: DictConfig | None = None) -> torch.optim.Optimizer:
    """Check `cfg` (a `_partial_: true` node), instantiate it for `params`, wrap it in Lookahead if enabled."""
    check_hyperparameters(cfg, name)
    try:
        # _convert_=all: plain lists, not ListConfig, must reach torch (betas end up in state_dict).
        factory = instantiate(cfg, _convert_="all")
        optimizer = factory(params)
    except (InstantiationException, TypeError, ValueError) as exc:
        raise OptbenchError(
            f"optimizer={name} could not be built from its configuration: {exc}. Check the "
            f"optimizer.* overrides on the command line against configs/optimizer/{name}.yaml "
            "(e.g. optimizer.lr=0.01)."
        ) from exc
    if lookahead is None or not lookahead.enabled:
        return optimizer
    try:
        return Lookahead(optimizer, k=lookahead.k, alpha=lookahead.alpha)
    except ValueError as exc:
        raise OptbenchError(f"{exc}: set e.g. lookahead.k=5 lookahead.alpha=0.5.") from exc
