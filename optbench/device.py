"""Device group: turn `device.type` (auto | cpu | cuda[:N]) into a torch.device."""

from __future__ import annotations

import torch

from optbench.errors import OptbenchError


def resolve_device(kind: str) -> torch.device:
    """Map the configured device type to an available torch.device, or explain why it is not."""
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(kind)
    except RuntimeError as exc:
        raise OptbenchError(
            f"device.type={kind!r} is not a device torch knows ({exc}). Use device=auto, "
            "device=cpu or device=cuda (device.type=cuda:1 for a second GPU)."
        ) from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise OptbenchError(
                "device=cuda was requested but torch sees no CUDA GPU on this machine (or this "
                "torch build has no CUDA support). Use device=auto to fall back to the CPU, or "
                "device=cpu."
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise OptbenchError(
                f"device.type={kind!r} asks for GPU {device.index}, but only "
                f"{torch.cuda.device_count()} GPU(s) are visible. Use device=cuda for the first one."
            )
    return device
