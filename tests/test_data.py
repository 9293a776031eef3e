"""Data: offline MNIST from the bundled files, exact ToTensor/Normalize inputs, clear errors."""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from torchvision import transforms

from optbench.config.sources import config_dir
from optbench.data import datasets as data
from optbench.data.datasets import MNIST_SHA256, ensure_mnist, load_dataset, sha256
from optbench.errors import OptbenchError


def cfg(root, name="mnist", normalize=False):
    """The dataset=NAME node as configs/dataset/ composes it, with these settings."""
    preset = OmegaConf.load(Path(config_dir()) / "dataset" / f"{name}.yaml")
    return OmegaConf.merge(preset, dict(root=str(root), normalize=normalize, mean=0.1307, std=0.3081))


def test_bundled_mnist_unpacks_with_checksums(tmp_path):
    ensure_mnist(tmp_path)
    raw = tmp_path / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(MNIST_SHA256)
    for name, digest in MNIST_SHA256.items():
        assert sha256(raw / name) == digest


def test_damaged_file_is_replaced(tmp_path):
    ensure_mnist(tmp_path)
    victim = tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    victim.write_bytes(victim.read_bytes()[:100])  # truncated
    ensure_mnist(tmp_path)
    assert sha256(victim) == MNIST_SHA256[victim.name]
    # Same size, one byte changed after this process verified it: the new mtime makes it hash again.
    victim.write_bytes(b"\xff" + victim.read_bytes()[1:])
    stat = victim.stat()
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    ensure_mnist(tmp_path)
    assert sha256(victim) == MNIST_SHA256[victim.name]


def test_mnist_tensors(data_root):
    ds = load_dataset(cfg(data_root))
    assert (len(ds.train), len(ds.test), ds.num_features, ds.num_classes) == (60000, 10000, 784, 10)
    assert ds.train.pixels.dtype == torch.uint8 and ds.train.labels.dtype == torch.int64


def test_each_split_is_decoded_once_per_process_and_shared_read_only(data_root, monkeypatch):
    read = []
    open_split = data.MNIST.open_split
    monkeypatch.setattr(data.MNIST, "open_split", lambda root, train: read.append(train) or open_split(root, train))
    data._decoded.cache_clear()
    first = load_dataset(cfg(data_root))
    pixels = first.train.pixels.clone()
    held_out = data.MNIST(name="mnist", root=str(data_root), validation_size=10).load(validation=True)
    assert read == [True, False]  # the second and third loads decoded nothing
    assert held_out.train.pixels is not first.train.pixels and len(held_out.train) == 59990
    assert torch.equal(load_dataset(cfg(data_root)).train.pixels, pixels)  # nothing wrote to the shared images


@pytest.mark.parametrize("normalize", [False, True])
def test_inputs_are_bit_identical_to_torchvision_transforms(data_root, normalize):
    ds = load_dataset(cfg(data_root, normalize=normalize))
    pipeline = [transforms.ToTensor()] + ([transforms.Normalize((0.1307,), (0.3081,))] if normalize else [])
    expected = torch.stack(
        [
            transforms.Compose(pipeline)(
                Image.fromarray(ds.train.pixels[i].reshape(28, 28).numpy(), mode="L")
            ).flatten()
            for i in range(50)
        ]
    )
    inputs, labels = ds.train.batch(torch.arange(50))
    assert torch.equal(inputs, expected)
    assert torch.equal(labels, ds.train.labels[:50])


def test_unwritable_root_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OptbenchError, match="dataset.root=.*writable"):
        load_dataset(cfg(blocker / "data"))


def test_missing_fashion_mnist_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian-package")

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr("torchvision.datasets.utils.urlopen", offline, raising=False)
    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.raises(OptbenchError) as err:
        load_dataset(cfg(tmp_path / "root", name="fashion_mnist"))
    message = str(err.value)
    assert "Fashion-MNIST" in message and "apt-get install dataset-fashion-mnist" in message


@pytest.mark.skipif(not data.DEBIAN_FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist not installed")
def test_fashion_mnist_from_debian_package(tmp_path):
    ds = load_dataset(cfg(tmp_path, name="fashion_mnist"))
    assert (len(ds.train), len(ds.test), ds.num_classes) == (60000, 10000, 10)


def test_default_root_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert data.default_root() == tmp_path / "optbench" / "data"


def test_a_dataset_config_without_a_class_says_what_to_add():
    """A dataset config of one's own (`--config-dir`) must name its class, as the shipped ones do."""
    with pytest.raises(OptbenchError, match="'mine' names no class: give it a `_target_`"):
        load_dataset(OmegaConf.create(dict(name="mine", root=None)))
