"""task=algoperf_mnist is AlgoPerf's MNIST development workload (mlcommons/algorithmic-efficiency,
algoperf/workloads/mnist/): its network, initialisation, pixel normalisation, split, loss, target and step hint."""

from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch
from conftest import make_cfg, run
from torch import nn

from optbench.data.datasets import load_dataset
from optbench.model import MLP, build_model
from optbench.tasks import Target


def algoperf_default_init(module: nn.Module) -> None:
    """algoperf/init_utils.py's pytorch_default_init, verbatim but for the formatting."""
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(module.weight)
    std = math.sqrt(1.0 / fan_in) / 0.87962566103423978
    nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
    if module.bias is not None:
        nn.init.constant_(module.bias, 0.0)


class AlgoPerfModel(nn.Module):
    """algoperf/workloads/mnist/mnist_pytorch/workload.py's _Model, with its reset_parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            OrderedDict(
                [
                    ("layer1", torch.nn.Linear(28 * 28, 128, bias=True)),
                    ("layer1_sig", torch.nn.Sigmoid()),
                    ("layer2", torch.nn.Linear(128, 10, bias=True)),
                ]
            )
        )

    def reset_parameters(self) -> None:
        for m in self.net.modules():
            if isinstance(m, nn.Linear):
                algoperf_default_init(m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.view(x.size()[0], -1))


def test_the_network_and_its_initialisation_are_algoperfs_bit_for_bit():
    """Built from the same generator state, the preset's model has AlgoPerf's layers and parameters exactly, and
    computes the same outputs."""
    cfg = make_cfg("task=algoperf_mnist")
    torch.manual_seed(7)
    theirs = AlgoPerfModel()
    theirs.reset_parameters()
    torch.manual_seed(7)
    ours = build_model(cfg.model, 784, 10)
    assert isinstance(ours, MLP) and [type(m) for m in ours] == [nn.Linear, nn.Sigmoid, nn.Linear]
    for mine, their in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(mine, their)
    inputs = torch.rand(5, 784)
    assert torch.equal(ours(inputs), theirs(inputs))
    weights = ours[0].weight
    assert weights.abs().max() <= 2 * math.sqrt(1 / 784) / 0.87962566103423978  # truncated at two std
    assert abs(weights.std().item() - math.sqrt(1 / 784)) < 0.02 * math.sqrt(1 / 784)  # LeCun's std
    assert not ours[0].bias.any() and not ours[2].bias.any()


@pytest.mark.slow  # loads MNIST twice
def test_pixels_split_and_target_are_algoperfs():
    """The raw 0..255 pixels are normalised with the [0, 1]-scale statistics (AlgoPerf's quirk); the first 50,000
    training images train and the last 10,000 validate; the targets are strictly above 0.97."""
    cfg = make_cfg("task=algoperf_mnist")
    full = load_dataset(cfg.dataset)
    data = load_dataset(cfg.dataset, validation=True)
    assert (len(data.train), len(data.valid), len(data.test)) == (50000, 10000, 10000)
    assert torch.equal(data.train.pixels, full.train.pixels[:50000])
    assert torch.equal(data.valid.pixels, full.train.pixels[50000:])
    assert torch.equal(data.valid.labels, full.train.labels[50000:])
    pixels = full.train.pixels[:3]
    expected = (pixels.to(torch.float32) - 0.1307) / 0.3081  # _normalize: (tf.cast(image, float32) - mean) / std
    assert torch.equal(data.train.batch(torch.arange(3))[0], expected)
    assert math.isclose(data.train.features.max().item(), (255 - 0.1307) / 0.3081, rel_tol=1e-6)  # not ~2.8
    target = Target.from_config(cfg.task.target)
    assert not target.met(0.97) and target.met(0.9701) and str(target) == "test_accuracy > 0.97"
    assert (cfg.iterations, cfg.batch_size, cfg.validation) == (7813, 64, True)


def test_a_short_run_writes_validation_and_test_rows(tmp_path):
    """A run of the preset evaluates both splits and records the strict target in summary.json."""
    summary = run(tmp_path, "task=algoperf_mnist", "optimizer=adam", "iterations=20", "eval_every=10")
    assert summary["status"] == "completed"
    assert summary["target"] == {"metric": "test_accuracy", "threshold": 0.97, "mode": "max", "strict": True}
    assert len((tmp_path / "valid.csv").read_text().splitlines()) == 3
