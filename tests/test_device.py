"""The device group and the GPU path. Tests marked `device` run on every device: the CPU always, CUDA
where a GPU is present (skipped with the reason elsewhere); `pytest -m device` runs just them
(benchmarks/gpu_check.py does, on a GPU machine). The rest check on a CPU what a CPU can check of the
GPU path: the numerics policy, the fingerprint, the scaling table, no per-step device tensor."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy
import pandas as pd
import pytest
import torch
from conftest import REPO, assert_same_metrics, make_cfg, run

from optbench.config.fingerprint import config_fingerprint
from optbench.data.datasets import Split
from optbench.errors import OptbenchError
from optbench.job.job import run_job
from optbench.runtime import device as device_module
from optbench.sweeps.vectorized import batched
from optbench.sweeps.vectorized.engine import run_group
from optbench.tasks import build_task

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
DEVICES = [pytest.param("cpu", marks=pytest.mark.device), pytest.param("cuda", marks=[pytest.mark.device, CUDA])]
SHORT = ["iterations=60", "eval_every=30", "batch_size=100"]
# CUDA's kernels are not the CPU's (cuBLAS products reduce in other orders, torch steps optimizers with
# its foreach kernels there): runs on the two, and a vectorised member against its single run on a
# GPU, agree to this tolerance, not bit for bit. Stated for 60-150 steps of the MLP.
CUDA_LOSS_RTOL = 1e-3
CUDA_ACCURACY_ABS = 0.005


def pixel_image_values() -> torch.Tensor:
    """Every uint8 pixel value, as one row."""
    return torch.arange(256, dtype=torch.uint8).unsqueeze(0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("normalize", [False, True])
def test_pixels_scale_to_torchvisions_values_on_the_device(device, normalize):
    """ToTensor (and Normalize) on the CPU give the reference floats; a device's scaling must equal
    them bit for bit for all 256 pixel values (on a GPU through the table computed on the CPU)."""
    from PIL import Image
    from torchvision import transforms

    mean, std = (0.1307, 0.3081) if normalize else (None, None)
    reference = transforms.ToTensor()(Image.fromarray(pixel_image_values().numpy()))
    if normalize:
        reference = transforms.Normalize((mean,), (std,))(reference)
    split = Split(pixel_image_values().to(device), torch.zeros(1, dtype=torch.int64, device=device), mean, std)
    for scaled in (split.scale(split.pixels), split.scale(split.pixels, by_table=True), split.features):
        assert scaled.device.type == device
        assert torch.equal(scaled.cpu().flatten(), reference.flatten())


@pytest.mark.parametrize("device", DEVICES)
def test_a_run_records_its_device_and_repeats_bit_for_bit(tmp_path, device):
    """Same config + seed on the same device: the same CSVs. The summary says where and how it ran."""
    first = run(tmp_path / "first", "optimizer=adam", f"device={device}", *SHORT)
    run(tmp_path / "second", "optimizer=adam", f"device={device}", *SHORT)
    for name in ("train.csv", "test.csv"):
        assert_same_metrics(tmp_path / "first" / name, tmp_path / "second" / name, f"{device}: {name}")
    assert first["device"].startswith(device) and first["numerics"] == {"deterministic": True, "tf32": False}
    assert first["device_name"] and (first["cuda_version"] is None) == (device == "cpu")
    assert first["warmup_seconds"] > 0 and first["train_seconds"] > 0
    assert first["iterations_per_second"] == pytest.approx(59 / first["train_seconds"], rel=0.01)  # warm-up untimed
    test = pd.read_csv(tmp_path / "first" / "test.csv")
    assert test.seconds.iloc[-1] == pytest.approx(first["train_seconds"], abs=1e-3)  # one clock for both


@pytest.mark.parametrize("device", DEVICES)
def test_language_windows_are_the_cpus_on_every_device(device):
    """The LM task draws its window offsets on the CPU: a GPU run trains on a CPU run's windows."""
    overrides = ("task=shakespeare_char", "model.n_layer=1", "model.n_head=2", "model.n_embd=16", "model.block_size=16")
    windows = {}
    for where in ("cpu", device):
        task = build_task(make_cfg(*overrides))
        task.setup(torch.device(where))
        torch.manual_seed(0)
        batches = task.batches(4)
        windows[where] = torch.stack([next(batches).cpu() for _ in range(3)])
    assert torch.equal(windows["cpu"], windows[device])


def final_losses(directory: Path) -> tuple[pd.Series, pd.Series]:
    """A run's train losses and test accuracies."""
    return pd.read_csv(directory / "train.csv").loss, pd.read_csv(directory / "test.csv").accuracy


# The CPU case runs in the slow tier: test_vectorized's fast test checks members against single runs bit for bit.
@pytest.mark.parametrize("device", [pytest.param("cpu", marks=[pytest.mark.device, pytest.mark.slow]), DEVICES[1]])
def test_vectorized_members_match_their_single_runs_on_the_device(tmp_path, device):
    """Bit for bit on the CPU (one thread); on a GPU (baddbmm is not addmm there) within the stated tolerance."""
    members = [["optimizer=sgd", "optimizer.lr=0.05"], ["optimizer=adam", "seed=1", "schedule=cosine"]]
    budget = [*SHORT, "threads=1", f"device={device}"]
    cfgs = [make_cfg(*member, *budget) for member in members]
    run_group(cfgs, [tmp_path / f"member{i}" for i in range(len(cfgs))])
    for i, cfg in enumerate(cfgs):
        run_job(cfg, tmp_path / f"alone{i}")
        if device == "cpu":
            for name in ("train.csv", "test.csv"):
                assert_same_metrics(tmp_path / f"member{i}" / name, tmp_path / f"alone{i}" / name, name)
        else:
            (member_loss, member_acc), (alone_loss, alone_acc) = (
                final_losses(tmp_path / f"{side}{i}") for side in ("member", "alone")
            )
            assert member_loss.to_numpy() == pytest.approx(alone_loss.to_numpy(), rel=CUDA_LOSS_RTOL)
            assert member_acc.to_numpy() == pytest.approx(alone_acc.to_numpy(), abs=CUDA_ACCURACY_ABS)


@CUDA
@pytest.mark.device
def test_cpu_and_cuda_runs_agree_within_the_stated_tolerance(tmp_path):
    """A GPU run is the CPU run up to rounding: the MLP's losses within CUDA_LOSS_RTOL."""
    for where in ("cpu", "cuda"):
        run(tmp_path / where, "optimizer=adam", f"device={where}", *SHORT)
    (cpu_loss, cpu_acc), (gpu_loss, gpu_acc) = final_losses(tmp_path / "cpu"), final_losses(tmp_path / "cuda")
    assert gpu_loss.to_numpy() == pytest.approx(cpu_loss.to_numpy(), rel=CUDA_LOSS_RTOL)
    assert gpu_acc.to_numpy() == pytest.approx(cpu_acc.to_numpy(), abs=CUDA_ACCURACY_ABS)


@CUDA
@pytest.mark.device
def test_no_host_sync_between_evaluations(tmp_path):
    """Under torch's sync debug mode a run's steps trigger no synchronising call; only evaluations may."""
    from benchmarks.gpu_check import sync_audit

    audit = sync_audit(make_cfg("optimizer=adam", "device=cuda", *SHORT), tmp_path)
    assert audit.between_evaluations == 0, audit.messages


def test_the_numerics_policy_is_applied_on_a_gpu_and_restored_after():
    """The flags torch's CUDA backends read (set even where no GPU is present) follow device.* inside the
    block and are torch's own again after it; a CPU run leaves them alone."""
    backends = torch.backends
    before = (
        backends.cuda.matmul.allow_tf32,
        backends.cudnn.allow_tf32,
        backends.cudnn.deterministic,
        backends.cudnn.benchmark,
        torch.are_deterministic_algorithms_enabled(),
    )
    for preset, deterministic, tf32 in (("cuda", True, False), ("cuda_fast", False, True)):
        node = make_cfg(f"device={preset}").device
        with device_module.device_settings(node, torch.device("cuda")) as policy:
            assert policy == {"deterministic": deterministic, "tf32": tf32}
            assert backends.cuda.matmul.allow_tf32 is tf32 and backends.cudnn.allow_tf32 is tf32
            assert backends.cudnn.deterministic is deterministic and backends.cudnn.benchmark is not deterministic
            assert torch.are_deterministic_algorithms_enabled() is deterministic
        assert (
            backends.cuda.matmul.allow_tf32,
            backends.cudnn.allow_tf32,
            backends.cudnn.deterministic,
            backends.cudnn.benchmark,
            torch.are_deterministic_algorithms_enabled(),
        ) == before
    with device_module.device_settings(make_cfg("device=cuda_fast").device, torch.device("cpu")) as policy:
        assert policy["tf32"] and backends.cudnn.allow_tf32 == before[1]  # recorded, not applied


def test_a_bad_numerics_flag_is_one_clear_message(tmp_path):
    with pytest.raises(OptbenchError, match=r"device.tf32='yes' must be true or false"):
        run(tmp_path, "device=cpu", "device.tf32=yes", "iterations=2")


def test_the_fingerprint_hashes_the_device_auto_resolves_to(monkeypatch):
    """`resume=true` must not take a CPU run for a GPU run of the same config, nor the other way round."""
    auto, cpu, cuda = (config_fingerprint(make_cfg(f"device={kind}")) for kind in ("auto", "cpu", "cuda"))
    assert auto == cpu != cuda  # this host has no GPU: auto is the CPU here
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert config_fingerprint(make_cfg("device=auto")) == cuda != cpu
    assert config_fingerprint(make_cfg("device=cuda", "device.type=cuda:1")) == cuda  # which GPU: same numbers


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the summary of a host without a GPU")
def test_a_cpu_summary_names_the_cpu(tmp_path):
    summary = run(tmp_path, "device=auto", "iterations=2", "eval_every=2")
    assert summary["device"] == "cpu" and summary["device_name"] == device_module.cpu_name()
    assert json.loads((tmp_path / "summary.json").read_text())["numerics"] == {"deterministic": True, "tf32": False}


def test_batched_steps_make_no_device_tensor_per_step(monkeypatch):
    """Per-member hyper-parameters that change every step (Adam's bias corrections, a per-member lr)
    are refilled into one persistent tensor: no torch.tensor(...) and no new buffer after the first step."""
    torch.manual_seed(0)
    params = torch.zeros(3, 4)
    grads = torch.randn(3, 4)
    optimizers = [torch.optim.Adam([torch.zeros(4, requires_grad=True)], lr=lr) for lr in (0.1, 0.01, 0.001)]
    block = batched.BatchedAdam(optimizers, [params], [grads], slice(0, 3))
    block.step()
    buffer = block.hyper._rows
    monkeypatch.setattr(torch, "tensor", lambda *a, **k: pytest.fail("torch.tensor called in a batched step"))
    for _ in range(3):
        block.step()
    assert block.hyper._rows is buffer
    t = 4.0  # the last step's hyper-parameters: each member's float32 of torch's double expression
    expected = [float(numpy.float32(-(lr / (1 - 0.9**t)))) for lr in (0.1, 0.01, 0.001)]
    assert block.v["step_size"].tolist() == expected


@pytest.mark.slow
def test_the_gpu_check_runs_on_a_cpu(tmp_path):
    """benchmarks/gpu_check.py --device cpu --quick: every section runs and prints its rows, none fails."""
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--quick"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = result.stdout
    for section in ("versions", "smoke", "determinism", "CPU vs device", "sync audit", "vectorised", "speed", "tests"):
        assert f"| {section} |" in table, section
    assert "**FAIL**" not in table and "0 failed of" in table
    assert "| determinism | MLP twice (60 steps) | identical |" in table
    assert "| vectorised | 8 members vs single runs (60 steps) | bit for bit |" in table


def visible_gpus(monkeypatch, count: int, current: int = 0) -> None:
    """Make torch report `count` CUDA GPUs (`current` the current one): what a many-GPU box shows."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: current)


def test_jobs_side_by_side_take_gpu_k_mod_n_and_an_explicit_gpu_wins(monkeypatch):
    visible_gpus(monkeypatch, 4)
    assert [device_module.spread("auto", k) for k in range(6)] == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"] + [
        "cuda:0",
        "cuda:1",
    ]
    assert device_module.spread("cuda", 6) == "cuda:2"
    assert device_module.spread("cuda:3", 1) == "cuda:3" and device_module.spread("cpu", 1) == "cpu"
    visible_gpus(monkeypatch, 1)
    assert device_module.spread("auto", 5) == "auto"  # one GPU: nothing to spread
    visible_gpus(monkeypatch, 0)
    assert (device_module.spread("auto", 5), device_module.spread("cuda", 5)) == ("auto", "cuda")  # no GPU


def test_a_gpu_is_recorded_with_its_index(monkeypatch):
    """summary.json's `device` names the GPU a job used: `cuda` and `auto` resolve to the current one's index."""
    visible_gpus(monkeypatch, 2, current=1)
    assert device_module.resolve_device("cuda") == device_module.resolve_device("auto") == torch.device("cuda", 1)
    assert device_module.resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(OptbenchError, match=r"device.type='cuda:2' asks for GPU 2, but only 2 GPU\(s\)"):
        device_module.resolve_device("cuda:2")


def test_a_parallel_launchers_jobs_spread_over_the_gpus(monkeypatch):
    """A job of joblib/submitit/Ray (each in its own process) gets GPU `hydra.job.num mod N`; the basic and
    vectorised launchers' jobs keep their device (the vectorised launcher spreads its groups itself)."""
    from optbench.job.job import settle

    visible_gpus(monkeypatch, 3)
    joblib = {"_target_": "hydra_plugins.hydra_joblib_launcher.JoblibLauncher", "n_jobs": 3}
    basic = {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}
    chosen = {}
    for launcher, device in ((joblib, "device=auto"), (joblib, "device.type=cuda:1"), (basic, "device=auto")):
        for num in range(5):
            cfg = make_cfg(device, "iterations=2")
            cfg.hydra.launcher, cfg.hydra.mode, cfg.hydra.job.num = launcher, "MULTIRUN", num
            cfg.hydra.sweep.dir = "/tmp/sweep"
            assert settle(cfg, Path("/nonexistent")) is None
            chosen.setdefault((launcher["_target_"][-14:], device), []).append(cfg.device.type)
    assert list(chosen.values()) == [
        ["cuda:0", "cuda:1", "cuda:2", "cuda:0", "cuda:1"],  # joblib, auto: job k on GPU k mod 3
        ["cuda:1"] * 5,  # an explicit GPU wins
        ["auto"] * 5,  # one job at a time in the sweep's own process: the current GPU
    ]


def test_the_vectorised_launcher_trains_one_group_per_gpu(monkeypatch):
    """By default one process per visible GPU when the groups train on CUDA (group g on GPU g mod N),
    never more processes than groups; on the CPU one, unless `processes` says otherwise."""
    from hydra_plugins.optbench_vectorized.vectorized_launcher import side_by_side

    auto, cpu = make_cfg("device=auto"), make_cfg("device=cpu")
    visible_gpus(monkeypatch, 4)
    assert [side_by_side(None, [auto] * groups) for groups in (1, 3, 6)] == [1, 3, 4]
    assert side_by_side(None, [cpu] * 6) == 1 and side_by_side(2, [cpu] * 6) == 2 and side_by_side(8, [cpu]) == 1
    assert side_by_side(2, [auto] * 6) == 2  # an explicit count wins
