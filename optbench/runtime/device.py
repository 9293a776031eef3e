"""Device group: turn `device.type` (auto | cpu | cuda[:N]) into a torch.device, apply the group's
numerics policy for a run (deterministic algorithms, TF32 or not), and describe the hardware.

The defaults favour trust over speed: on a GPU, float32 stays float32 (no TF32) and cuDNN/cuBLAS use
deterministic algorithms, so the same config and seed give the same numbers. `device=cuda_fast`
(or `device.tf32=true device.deterministic=false`) asks for speed instead. A CPU run's numbers
depend on neither flag; they are recorded all the same.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from optbench.errors import OptbenchError

# cuBLAS is deterministic only with a fixed workspace (NVIDIA's cuBLAS docs, "Results reproducibility");
# torch refuses deterministic matmuls without it. Read when the first cuBLAS handle is made.
CUBLAS_WORKSPACE = ":4096:8"


@dataclass(frozen=True)
class Device:
    """The `device` group (`configs/device/*.yaml` name this class): which device a run trains on
    (`auto`, `cpu`, `cuda`, `cuda:1`) and its numerics policy."""

    type: str = "auto"
    deterministic: bool = True  # cuDNN/cuBLAS's deterministic algorithms (a CPU run records it only)
    tf32: bool = False  # TF32 matmuls and convolutions on a GPU

    @classmethod
    def of(cls, node: DictConfig) -> Device:
        """The device group's object for a job config's `device` node (checked by `optbench.config.validation`)."""
        return instantiate(node) if "_target_" in node else cls(**node)

    def resolve(self) -> torch.device:
        """The torch.device this host gives for `type`, or an OptbenchError saying why there is none."""
        return resolve_device(self.type)

    def numerics(self) -> dict[str, bool]:
        """The numerics policy, as a run's summary records it."""
        return numerics(self)

    def settings(self, device: torch.device) -> AbstractContextManager[dict[str, bool]]:
        """The numerics policy applied on `device` for the duration of a block."""
        return device_settings(self, device)


def resolved_type(kind: str) -> str:
    """What `device.type` means on this host, never raising: `auto` becomes `cuda` or `cpu`; an index is dropped."""
    if kind == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(kind).split(":", 1)[0]


def gpu_count() -> int:
    """How many CUDA GPUs this process sees (0 without CUDA); a scheduler's CUDA_VISIBLE_DEVICES narrows it."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def spread(kind: str, slot: int) -> str:
    """The device type for job `slot` of a launch that runs jobs side by side: `auto` and `cuda` take GPU
    `slot mod N` of the N visible ones; `cpu`, an explicit `cuda:I` and a box with one GPU keep `kind`."""
    count = gpu_count()
    if kind not in ("auto", "cuda") or count < 2:
        return kind
    return f"cuda:{slot % count}"


def resolve_device(kind: str) -> torch.device:
    """Map the configured device type to an available torch.device, or explain why it is not."""
    if kind == "auto":
        kind = resolved_type(kind)
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
        if device.index is None:  # name the GPU (`cuda:0`), so summary.json says which one a job used
            device = torch.device("cuda", torch.cuda.current_device())
    return device


def numerics(node: DictConfig | Device) -> dict[str, bool]:
    """The numerics policy a `device` config asks for: {'deterministic': ..., 'tf32': ...}."""
    return {"deterministic": getattr(node, "deterministic", True), "tf32": getattr(node, "tf32", False)}


@contextmanager
def device_settings(node: DictConfig | Device, device: torch.device) -> Iterator[dict[str, bool]]:
    """Apply the device group's numerics policy for the block (GPU only), then restore torch's settings.

    Deterministic: cuDNN's deterministic algorithms without autotuning, torch's deterministic
    implementations (`torch.use_deterministic_algorithms`, warning where an op has none) and cuBLAS's
    fixed workspace. Not deterministic: cuDNN autotunes (`cudnn.benchmark`). TF32 on or off for both
    matmuls and convolutions. Yields the policy, for the run's summary.
    """
    policy = numerics(node)
    if device.type != "cuda":
        yield policy  # CPU kernels take neither flag; torch's CPU defaults stay untouched
        return
    backends = torch.backends
    saved = (
        backends.cuda.matmul.allow_tf32,
        backends.cudnn.allow_tf32,
        backends.cudnn.deterministic,
        backends.cudnn.benchmark,
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    previous_device = torch.cuda.current_device() if device.index is not None else None
    if previous_device is not None:
        torch.cuda.set_device(device)  # kernels, handles and `torch.cuda.*` calls without a device go there
    if policy["deterministic"]:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    backends.cuda.matmul.allow_tf32 = backends.cudnn.allow_tf32 = policy["tf32"]
    backends.cudnn.deterministic = policy["deterministic"]
    backends.cudnn.benchmark = not policy["deterministic"]
    torch.use_deterministic_algorithms(policy["deterministic"], warn_only=True)
    try:
        yield policy
    finally:
        (
            backends.cuda.matmul.allow_tf32,
            backends.cudnn.allow_tf32,
            backends.cudnn.deterministic,
            backends.cudnn.benchmark,
        ) = saved[:4]
        torch.use_deterministic_algorithms(saved[4], warn_only=saved[5])
        if previous_device is not None:
            torch.cuda.set_device(previous_device)


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what the platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_kind() -> str:
    """Which CPU kernels run: vendor, family and model (/proc/cpuinfo) and torch's vector capability, e.g.
    `AuthenticAMD family 25 model 17, AVX2`. Two machines that agree run the same CPU kernels: bit-for-bit
    comparisons hold only between them (a model name such as `AMD EPYC` covers several generations)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    where = " ".join(
        f"{label}{fields[key]}"
        for key, label in (("vendor_id", ""), ("cpu family", "family "), ("model", "model "))
        if key in fields
    )
    return f"{where or platform.machine()}, {torch.backends.cpu.get_cpu_capability()}"


def hardware(device: torch.device) -> dict[str, Any]:
    """What a run's numbers and seconds depend on: the device's name, and on a GPU the CUDA and cuDNN versions."""
    if device.type != "cuda":
        return {"device_name": cpu_name(), "cuda_version": None, "cudnn_version": None}
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "device_name": torch.cuda.get_device_name(device),
        "cuda_version": torch.version.cuda,
        "cudnn_version": cudnn,
    }


def upload(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`tensor` (on the CPU) on `device` without a host sync: a GPU copy goes through pinned memory,
    asynchronously (torch's pinned-memory cache keeps the block until the copy has run)."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)
