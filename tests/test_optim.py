"""The from-scratch optimizers match torch.optim step for step, and in full optbench runs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import make_cfg, run
from hydra.utils import instantiate
from omegaconf import OmegaConf

from optbench.config.sources import config_dir
from optbench.data.datasets import load_dataset
from optbench.job.job import cpu_settings
from optbench.model import MLP

SCRATCH = sorted(p.stem for p in (Path(config_dir()) / "optimizer" / "scratch").glob("*.yaml"))


def test_every_issue_algorithm_has_a_scratch_config():
    assert set(SCRATCH) == {
        "sgd",
        "momentum",
        "nesterov",
        "adagrad",
        "rmsprop",
        "adadelta",
        "adam",
        "adamw",
        "adamax",
        "nadam",
        "radam",
    }


@pytest.mark.parametrize("name", SCRATCH)
def test_scratch_config_mirrors_the_torch_names_and_defaults(name):
    scratch = OmegaConf.to_container(make_cfg(f"optimizer=scratch/{name}").optimizer)
    torch_twin = OmegaConf.to_container(make_cfg(f"optimizer={name}").optimizer)
    assert scratch["_target_"].startswith("optbench.optim.")
    for key, value in scratch.items():
        if not key.startswith("_"):
            assert torch_twin[key] == value, key


@pytest.fixture(scope="module")
def batches(data_root):
    preset = OmegaConf.load(Path(config_dir()) / "dataset" / "mnist.yaml")
    data = load_dataset(OmegaConf.merge(preset, dict(root=str(data_root), normalize=False, mean=0.0, std=1.0)))
    generator = torch.Generator().manual_seed(7)
    return [data.train.batch(torch.randint(0, len(data.train), (100,), generator=generator)) for _ in range(250)]


def trajectory(optimizer_cfg, batches) -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = MLP(784, 10, [100])
    optimizer = instantiate(optimizer_cfg, _convert_="all")(model.parameters())
    # Denormals flushed, as optbench's runs do: Adam-family moments decay into them, which some Intel CPUs
    # process many times slower (24-51 s a case there); both sides flush alike.
    with cpu_settings(flush_denormal=True, threads=None):
        for inputs, labels in batches:
            loss = F.cross_entropy(model(inputs), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


# 250 steps in the slow tier; the fast tier's 40 steps see the same update rules, with less time to drift.
@pytest.mark.parametrize("steps", [40, pytest.param(250, marks=pytest.mark.slow)])
@pytest.mark.parametrize("weight_decay", [None, 1e-3], ids=["default", "weight_decay=1e-3"])
@pytest.mark.parametrize("name", SCRATCH)
def test_matches_torch_step_for_step(name, weight_decay, steps, batches):
    extra = [f"optimizer.weight_decay={weight_decay}"] if weight_decay is not None else []
    ours = trajectory(make_cfg(f"optimizer=scratch/{name}", *extra).optimizer, batches[:steps])
    theirs = trajectory(make_cfg(f"optimizer={name}", *extra).optimizer, batches[:steps])
    for mine, reference in zip(ours, theirs):
        torch.testing.assert_close(mine, reference, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("name", SCRATCH)
def test_full_run_gives_the_same_test_accuracies(tmp_path, name):
    run(tmp_path / "scratch", f"optimizer=scratch/{name}", "device=cpu")
    run(tmp_path / "torch", f"optimizer={name}", "device=cpu")
    ours, theirs = (pd.read_csv(tmp_path / side / "test.csv") for side in ("scratch", "torch"))
    assert ours.iteration.tolist() == theirs.iteration.tolist() == [500, 1000, 1500, 2000, 2500, 3000]
    assert (100 * ours.accuracy).tolist() == pytest.approx((100 * theirs.accuracy).tolist(), abs=0.05)
