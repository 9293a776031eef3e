"""The `dataset` group: a class per dataset (MNIST, FashionMNIST, Thermometer; the text corpus is
`optbench.data.corpus.TextCorpus`), each loading its splits as tensors. MNIST-format files are read
through torchvision.

MNIST works offline: the four original IDX files ship gzipped inside the package and are unpacked
(checksums verified) into ``<root>/MNIST/raw`` where ``torchvision.datasets.MNIST`` reads them.
Fashion-MNIST comes from Debian's ``dataset-fashion-mnist`` package when present, else torchvision
downloads it.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import logging
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from optbench.config.validation import check_held_out
from optbench.data import dataset_of
from optbench.errors import OptbenchError
from optbench.runtime.device import upload

# sha256 of the uncompressed IDX files (see optbench/resources/mnist/README.md).
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    """One dataset split: pixels as stored (uint8, one row per example), labels, and the scaling.

    Pixels stay uint8 on the device (4x less memory than floats) and each gathered batch is scaled
    with ToTensor()/Normalize()'s exact ops, so inputs are bit-identical to the notebooks'. Whole-split
    passes (evaluation) read `features`, the split scaled once: scaling it again at each evaluation
    cost more than the test forward pass (a fresh 31 MB tensor's page faults).
    """

    pixels: torch.Tensor
    labels: torch.Tensor
    mean: float | None = None
    std: float | None = None
    origin: torch.Tensor | None = None  # each example's row in the file's split, once a part is held out
    divisor: float = 255  # pixels are divided by this before normalising (ToTensor's 255; AlgoPerf's MNIST: 1)

    def __len__(self) -> int:
        return len(self.labels)

    def scale(self, pixels: torch.Tensor, by_table: bool | None = None) -> torch.Tensor:
        """Model inputs: uint8 pixels as x / 255 (ToTensor; x / `divisor` in general), then (x - mean) / std if
        normalising.

        On the CPU this is ToTensor's own arithmetic. On a GPU, division by a constant is computed
        as multiplication by its reciprocal, ~1 ulp off on many pixel values, so there the pixels are
        looked up in `table`, the 256 values the CPU computes (`by_table` forces either way).
        """
        if pixels.dtype != torch.uint8:
            return pixels  # already real-valued features (e.g. the thermometer readings)
        if by_table if by_table is not None else pixels.device.type != "cpu":
            return self.table.index_select(0, pixels.reshape(-1).int()).view(pixels.shape)
        # uint8 / int promotes to float32: one kernel, same bits as .float().div(255)
        inputs = pixels.div(self.divisor) if self.divisor != 1 else pixels.float()
        return inputs if self.mean is None else inputs.sub(self.mean).div(self.std)

    @cached_property
    def table(self) -> torch.Tensor:
        """The scaled value of each pixel value 0..255, computed on the CPU, on the pixels' device."""
        return upload(self.scale(torch.arange(256, dtype=torch.uint8), by_table=False), self.pixels.device)

    @cached_property
    def features(self) -> torch.Tensor:
        """The whole split scaled, computed once: rows of it have the bits of scaling those rows alone."""
        return self.scale(self.pixels)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and labels of the examples at `index` (index_select: a cheap row gather)."""
        return self.scale(self.pixels.index_select(0, index)), self.labels.index_select(0, index)

    def chunks(self, size: int, count: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Inputs and labels of consecutive slices of at most `size` examples, in order, over the
        first `count` examples (all by default)."""
        count = len(self) if count is None else count
        for start in range(0, count, size):
            end = min(start + size, count)
            yield self.features[start:end], self.labels[start:end]

    def to(self, device: torch.device) -> Split:
        """Return this split with its tensors on `device`."""
        return replace(self, pixels=self.pixels.to(device), labels=self.labels.to(device))

    def subset(self, index: torch.Tensor) -> Split:
        """The examples at `index`, in that order, remembering which rows of the file's split they are."""
        origin = index if self.origin is None else self.origin.index_select(0, index)
        return replace(
            self, pixels=self.pixels.index_select(0, index), labels=self.labels.index_select(0, index), origin=origin
        )


@dataclass(frozen=True)
class Dataset:
    """Train and test splits plus the shapes a model needs."""

    name: str
    train: Split
    test: Split
    num_classes: int  # model outputs: classes, or 1 for a regression target
    kind: str = "classification"  # or "regression": MSE loss, no accuracy
    full_batch: bool = False  # every step uses the whole training split, in order
    valid: Split | None = None  # held out of the training examples when the validation split is on

    @property
    def num_features(self) -> int:
        """Number of input features per example (784 for 28x28 images)."""
        return self.train.pixels.shape[1]

    def to(self, device: torch.device) -> Dataset:
        """Return this dataset with its splits on `device`."""
        return replace(
            self,
            train=self.train.to(device),
            test=self.test.to(device),
            valid=self.valid.to(device) if self.valid is not None else None,
        )

    def hold_out(self, size: int, seed: int, pick: str = "random") -> Dataset:
        """This dataset with `size` training examples moved to a validation split.

        `pick="random"`: which ones is fixed by `seed` alone (its own generator, not the run's), so every
        run of a sweep trains on the same examples; both parts keep the original order. `pick="last"`: the
        last `size` examples (AlgoPerf's MNIST: the first 50,000 train, the last 10,000 validate). A
        full-batch dataset (the thermometer's 11 points) has nothing to spare: its validation split is the
        training split.
        """
        if self.full_batch:
            return replace(self, valid=self.train)
        n = len(self.train)
        check_held_out(size, n, self.name)
        if pick == "last":
            valid, train = torch.arange(n - size, n), torch.arange(n - size)
        else:
            chosen = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
            valid, train = chosen[:size].sort().values, chosen[size:].sort().values
        return replace(self, train=self.train.subset(train), valid=self.train.subset(valid))


def default_root() -> Path:
    """The cache dir data is unpacked/downloaded into when `dataset.root` is null."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "optbench" / "data"


def sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_verified: dict[Path, tuple[int, int]] = {}  # file -> (size, mtime) when its checksum last matched


def _checksum_matches(path: Path, expected: str) -> bool:
    """Whether `path` has sha256 `expected`; a file unchanged since it matched in this process is not read again."""
    stat = path.stat()
    if _verified.get(path) == (stat.st_size, stat.st_mtime_ns):
        return True  # a sweep's jobs in one process, and both splits of a run, hash each file once
    if sha256(path) != expected:
        return False
    _verified[path] = (stat.st_size, stat.st_mtime_ns)
    return True


def _unpack_gzip(source, target: Path) -> None:
    """Decompress `source` (path or file object) to `target` atomically (temp file + rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as out, gzip.open(source, "rb") as src:
            shutil.copyfileobj(src, out)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_mnist(root: Path) -> None:
    """Unpack the bundled MNIST files into `root`/MNIST/raw unless valid copies are there already."""
    raw = root / "MNIST" / "raw"
    bundled = resources.files("optbench") / "resources" / "mnist"
    for name, expected in MNIST_SHA256.items():
        target = raw / name
        if target.exists():
            if _checksum_matches(target, expected):
                continue
            log.warning("%s is damaged (sha256 mismatch): unpacking the bundled copy again", target)
        with resources.as_file(bundled / f"{name}.gz") as gz:
            try:
                _unpack_gzip(gz, target)
            except (OSError, EOFError) as exc:
                raise OptbenchError(
                    f"Could not unpack MNIST file {name} into {raw}: {exc}. Make sure "
                    f"dataset.root={root} is a writable directory (or point dataset.root / "
                    "$OPTBENCH_DATA elsewhere) and that the optbench installation is complete "
                    "(reinstall it if the bundled file is damaged)."
                ) from exc
        if not _checksum_matches(target, expected):
            raise OptbenchError(
                f"MNIST file {target} does not match its sha256 checksum after unpacking: the "
                "bundled copy is damaged. Reinstall optbench (pip install --force-reinstall .)."
            )


def ensure_fashion_mnist(raw: Path) -> bool:
    """Unpack Debian's Fashion-MNIST into the `raw` folder if installed; True when the files are there."""
    names = list(MNIST_SHA256)  # Fashion-MNIST uses MNIST's four file names
    if all((raw / n).exists() for n in names):
        return True
    if not all((DEBIAN_FASHION_MNIST / f"{n}.gz").exists() for n in names):
        return False
    for n in names:
        _unpack_gzip(DEBIAN_FASHION_MNIST / f"{n}.gz", raw / n)
    return True


@functools.lru_cache(maxsize=4)
def _decoded(kind: type[ImageDataset], root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One split's uint8 images (a row per example), labels and number of classes, decoded once per process.

    Decoding the IDX files costs ~70 ms per run, and the jobs of a sweep run in one process (Hydra's basic
    launcher, the Python API, the test suite) read the same files. The files' contents are fixed (checksums),
    and the tensors are shared read-only: subsets, held-out parts and devices get copies.
    """
    split = kind.open_split(root, train)
    images = split.data
    return images.reshape(len(images), -1), split.targets.to(torch.int64), len(split.classes)


def _root(root: str | None) -> Path:
    """The data folder: `dataset.root`, or the cache; created if missing."""
    path = Path(root).expanduser() if root else default_root()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OptbenchError(
            f"dataset.root={path} cannot be created ({exc.strerror}). Choose a writable folder: "
            "`dataset.root=/path/to/data` or set $OPTBENCH_DATA."
        ) from exc
    return path


@dataclass(frozen=True)
class ImageDataset(ABC):
    """An image classification dataset of the `dataset` group, read through torchvision from MNIST's file
    format; `configs/dataset/<name>.yaml` names a subclass in `_target_`, with these settings."""

    name: str
    root: str | None = None  # null: optbench's data cache
    normalize: bool = False  # true: (x - mean) / std after scaling pixels to [0, 1]
    mean: float = 0.0
    std: float = 1.0
    validation_size: int = 10000  # with the validation split on: training images held out
    validation_seed: int = 0
    validation_pick: str = "random"  # which ones: drawn by validation_seed, or `last` (AlgoPerf's MNIST)
    pixel_scale: float = 255  # pixels are divided by this before normalising; AlgoPerf's MNIST normalises raw 0..255

    @classmethod
    @abstractmethod
    def open_split(cls, root: Path, train: bool) -> Any:
        """One split as a torchvision dataset (a subclass says which dataset and where its files come from)."""

    def load(self, validation: bool = False) -> Dataset:
        """Both splits as tensors on the CPU; with `validation`, `validation_size` training images held out."""
        root = _root(self.root)
        mean, std = (self.mean, self.std) if self.normalize else (None, None)
        (train, train_labels, classes), (test, test_labels, _) = (
            _decoded(type(self), root, flag) for flag in (True, False)
        )
        dataset = Dataset(
            self.name,
            Split(train, train_labels, mean, std, divisor=self.pixel_scale),
            Split(test, test_labels, mean, std, divisor=self.pixel_scale),
            classes,
        )
        return (
            dataset.hold_out(self.validation_size, self.validation_seed, self.validation_pick)
            if validation
            else dataset
        )


class MNIST(ImageDataset):
    """`dataset=mnist`: the bundled files, unpacked (checksums verified) where torchvision reads them."""

    @classmethod
    def open_split(cls, root: Path, train: bool) -> Any:
        """MNIST's split from the bundled files: offline, always."""
        from torchvision import datasets  # imported here: torchvision's import is slow and only needed once

        ensure_mnist(root)
        return datasets.MNIST(root, train=train, download=False)


class FashionMNIST(ImageDataset):
    """`dataset=fashion_mnist`: Debian's copy when installed, else torchvision downloads it."""

    @classmethod
    def open_split(cls, root: Path, train: bool) -> Any:
        """Fashion-MNIST's split, downloading only where optbench has no local copy."""
        from torchvision import datasets

        raw = root / "FashionMNIST" / "raw"
        local = ensure_fashion_mnist(raw)
        try:
            return datasets.FashionMNIST(root, train=train, download=not local)
        except (OSError, RuntimeError, ValueError) as exc:  # URLError is an OSError
            if local:
                raise OptbenchError(
                    f"The Fashion-MNIST files in {raw} could not be read ({exc}): one of them is "
                    f"truncated or damaged. Delete {raw} and run again; optbench unpacks or downloads "
                    "them anew."
                ) from exc
            raise OptbenchError(
                f"Fashion-MNIST is not in {raw} and could not be "
                f"downloaded ({exc}). Either connect to the internet and run again, install "
                "Debian's package (`apt-get install dataset-fashion-mnist`), or copy the four "
                "Fashion-MNIST IDX files (uncompressed) into that folder."
            ) from exc


# The lecture's thermometer readings: celsius and the unknown units (t_c, t_u).
THERMOMETER_CELSIUS = [0.5, 14.0, 15.0, 28.0, 11.0, 8.0, 3.0, -4.0, 6.0, 13.0, 21.0]
THERMOMETER_UNKNOWN = [35.7, 55.9, 58.2, 81.9, 56.3, 48.9, 33.9, 21.8, 48.4, 60.4, 68.4]


def thermometer(input_scale: float) -> Dataset:
    """The lecture's 11-point linear toy problem; the test split is the same 11 points."""
    inputs = (input_scale * torch.tensor(THERMOMETER_UNKNOWN)).unsqueeze(1)  # t_un = 0.1 * t_u
    split = Split(inputs, torch.tensor(THERMOMETER_CELSIUS))
    return Dataset("thermometer", split, split, num_classes=1, kind="regression", full_batch=True)


@dataclass(frozen=True)
class Thermometer:
    """`dataset=thermometer`: the lecture's 11 readings, a full-batch regression (its validation split is
    its training split: nothing to spare)."""

    name: str = "thermometer"
    input_scale: float = 0.1

    def load(self, validation: bool = False) -> Dataset:
        """The readings as one split, used for training and testing."""
        dataset = thermometer(self.input_scale)
        return replace(dataset, valid=dataset.train) if validation else dataset


def load_dataset(cfg: DictConfig, validation: bool = False) -> Dataset:
    """Load the `dataset` node's dataset (the class its `_target_` names) as tensors on the CPU; with
    `validation`, hold `dataset.validation_size` training examples out as a validation split."""
    return dataset_of(cfg).load(validation)
