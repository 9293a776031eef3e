"""Optimizer group: build the configured torch.optim optimizer (a `_partial_` node) for a model."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from optbench.errors import OptbenchError


def build_optimizer(cfg: DictConfig, params: Iterable[torch.nn.Parameter], name: str) -> torch.optim.Optimizer:
    """Instantiate `cfg` (a `_partial_: true` node) and bind it to `params`."""
    try:
        # _convert_=all: plain lists, not ListConfig, must reach torch (betas end up in state_dict).
        factory = instantiate(cfg, _convert_="all")
        return factory(params)
    except (InstantiationException, TypeError, ValueError) as exc:
        raise OptbenchError(
            f"optimizer={name} could not be built from its configuration: {exc}. Check the "
            f"optimizer.* overrides on the command line against configs/optimizer/{name}.yaml "
            "(e.g. optimizer.lr=0.01)."
        ) from exc
