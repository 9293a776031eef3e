"""Data: the `dataset` group's datasets (MNIST, Fashion-MNIST, the thermometer readings, the text corpus) and
the order minibatches are drawn in (`optbench.data.sampling`)."""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from optbench.errors import OptbenchError


def dataset_of(node: DictConfig) -> Any:
    """The dataset class's object for a `dataset` node: `_target_` names the class (MNIST, TextCorpus, ...)."""
    if node.get("_target_") is None:
        raise OptbenchError(
            f"The dataset config {node.get('name', '?')!r} names no class: give it a `_target_`, e.g. "
            "`_target_: optbench.data.datasets.MNIST` (see configs/dataset/ for each dataset's)."
        )
    return instantiate(node, _convert_="all")
