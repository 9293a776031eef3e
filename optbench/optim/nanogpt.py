"""nanoGPT's optimizer (`configure_optimizers` in its model.py at 3adf61e): torch's AdamW, fused on a CUDA GPU.

Its parameter groups (weight decay on parameters of two or more dimensions only) are the preset's
`param_groups` (configs/optimizer/adamw_nanogpt.yaml); what this class adds is nanoGPT's device rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


class NanoGPTAdamW(torch.optim.AdamW):
    """torch's AdamW as nanoGPT builds it: `fused=True` where every parameter is on a CUDA GPU, torch's default
    implementation elsewhere (nanoGPT passes no `fused` on a CPU); `fused` given forces either."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.99),
        eps: float = 1e-8,
        weight_decay: float = 0.1,
        fused: bool | None = None,
    ) -> None:
        groups = list(params)
        if fused is None:
            tensors = [p for g in groups for p in (g["params"] if isinstance(g, dict) else [g])]
            fused = bool(tensors) and all(p.is_cuda for p in tensors)
        extra = {"fused": True} if fused else {}
        super().__init__(groups, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, **extra)
