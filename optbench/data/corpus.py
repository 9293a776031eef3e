"""Character-level text for the language-model task: find and check the text, encode it, cut it into
contiguous train / validation / test parts.

Tiny Shakespeare ships gzipped inside the package and is read in memory (nothing is unpacked);
`dataset.root` may point at a folder holding another copy of `input.txt`. The vocabulary is the
sorted set of characters of the whole text (65 for Tiny Shakespeare), as nanoGPT's `prepare.py` makes it.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from omegaconf import DictConfig

from optbench.data import dataset_of
from optbench.errors import OptbenchError

FILE_NAME = "input.txt"
BUNDLED = ("tinyshakespeare", "input.txt.gz")  # under optbench/resources/


@dataclass(frozen=True)
class Corpus:
    """A text as token ids, cut into contiguous parts, and its vocabulary (token id -> character)."""

    name: str
    train: torch.Tensor  # int64 token ids
    valid: torch.Tensor
    test: torch.Tensor
    vocabulary: str

    def to(self, device: torch.device) -> Corpus:
        """This corpus with its token ids on `device`."""
        return Corpus(self.name, self.train.to(device), self.valid.to(device), self.test.to(device), self.vocabulary)

    def decode(self, ids: torch.Tensor) -> str:
        """The characters of token ids."""
        return "".join(self.vocabulary[i] for i in ids.tolist())


def _text_bytes(root: str | None) -> tuple[bytes, str]:
    """The text's bytes and where they came from: the bundled copy, or `<root>/input.txt`."""
    if root is None:
        bundled = resources.files("optbench").joinpath("resources", *BUNDLED)
        try:
            return gzip.decompress(bundled.read_bytes()), f"the bundled {'/'.join(BUNDLED)}"
        except (OSError, EOFError) as exc:
            raise OptbenchError(
                f"optbench's bundled copy of Tiny Shakespeare cannot be read ({exc}): the installation "
                "is incomplete. Reinstall optbench (pip install --force-reinstall optbench)."
            ) from exc
    folder = Path(root).expanduser()
    path = folder / FILE_NAME if folder.is_dir() or not folder.suffix else folder
    try:
        return path.read_bytes(), str(path)
    except OSError as exc:
        raise OptbenchError(
            f"dataset.root={root}: the text file {path} cannot be read ({exc.strerror or exc}). Point dataset.root at "
            f"a folder holding Tiny Shakespeare's {FILE_NAME}, or use dataset.root=null for the copy shipped with optbench."
        ) from exc


def read_text(root: str | None, expected: str | None) -> str:
    """The text in `root` (or the bundled copy), checked against sha256 `expected` (None skips the check)."""
    data, origin = _text_bytes(root)
    if expected and hashlib.sha256(data).hexdigest() != expected:
        raise OptbenchError(
            f"The text in {origin} ({len(data):,} bytes) does not match dataset.sha256={expected}: it is damaged, "
            f"truncated or another text (Tiny Shakespeare has 1,115,394 bytes). Replace it with a good copy, use "
            f"dataset.root=null for the copy shipped with optbench, or set dataset.sha256=null to train on a text of your own."
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OptbenchError(f"The text in {origin} is not UTF-8 ({exc}). Give a UTF-8 text file.") from exc


def split_sizes(length: int, fractions: list[float]) -> tuple[int, int, int]:
    """Characters in the train, validation and test parts: train is int(n x its fraction), as nanoGPT."""
    train = int(length * fractions[0])
    valid = int(length * (fractions[0] + fractions[1])) - train
    return train, valid, length - train - valid


@dataclass(frozen=True)
class TextCorpus:
    """`dataset=shakespeare_char`: a character-level text of the `dataset` group (`configs/dataset/`)."""

    name: str
    root: str | None = None  # null: the copy shipped with optbench; or a folder holding another input.txt
    sha256: str | None = None  # null: train on a text of your own
    splits: tuple[float, ...] = (0.9, 0.05, 0.05)  # contiguous train / validation / test parts

    def load(self) -> Corpus:
        """Read, check and encode the text; cut it into contiguous train / validation / test parts."""
        text = read_text(self.root, self.sha256)
        vocabulary = "".join(sorted(set(text)))
        ids = encode(text, vocabulary)
        train, valid, test = torch.split(ids, split_sizes(len(ids), list(self.splits)))
        return Corpus(self.name, train, valid, test, vocabulary)


def encode(text: str, vocabulary: str) -> torch.Tensor:
    """Each character's index in `vocabulary` (sorted: nanoGPT's `stoi`), as int64 token ids.

    Looked up in a table indexed by code point: a Python loop over Tiny Shakespeare's 1.1 million characters
    cost ~65 ms a run, this ~5 ms.
    """
    if not text:
        return torch.zeros(0, dtype=torch.int64)
    codes = torch.frombuffer(bytearray(text.encode("utf-32-le")), dtype=torch.int32).long()
    table = torch.full((max(map(ord, vocabulary)) + 1,), -1, dtype=torch.int64)
    table[[ord(ch) for ch in vocabulary]] = torch.arange(len(vocabulary))
    return table[codes]


def load_corpus(cfg: DictConfig) -> Corpus:
    """The `dataset` node's text (the class its `_target_` names), encoded and cut into its three parts."""
    return dataset_of(cfg).load()
