"""Character-level language modelling (`shakespeare_char`): predict the next character of a text.

Training minibatches are `batch_size` windows of `block_size` + 1 characters at random offsets of the
training part (as nanoGPT's `get_batch`), from a generator seeded through `seed`.
Evaluations measure the mean per-character cross-entropy (nats) and the fraction of next characters
predicted exactly (the accuracy columns), in one of two ways (`task.eval_iters`):
- null (the default): fixed windows side by side over the whole test (or validation) part, so two
  evaluations of the same weights give the same numbers;
- N: nanoGPT's `estimate_loss`, the mean loss of N random minibatches of the training part and of the
  evaluated part, drawn from torch's global generator in nanoGPT's order (the training windows too),
  from iteration 0 on: with nanoGPT's seed and settings, its run's numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from optbench.config.validation import check_text_parts, fixed_batch
from optbench.data.corpus import Corpus, load_corpus
from optbench.data.sampling import Prefetching
from optbench.errors import instantiate_checked
from optbench.runtime.device import upload
from optbench.runtime.randomness import snapshot_global
from optbench.tasks.base import Evaluation, StepLoss, Task
from optbench.tasks.supervised import count_correct, loss_function

EVAL_TOKENS = 16_384  # characters per evaluation forward pass: bounds the attention's memory


class CharLanguageModel(Task):
    """A transformer from the `model` group trained on the characters of a text from the `dataset` group."""

    def __init__(
        self,
        name: str,
        target: Mapping[str, Any],
        dataset: DictConfig,
        model: DictConfig,
        description: str = "",
        batching: Any = None,
        validation: bool = False,
        batch_size: int | None = None,
        eval_iters: int | None = None,
    ) -> None:
        super().__init__(name, target, description, batching, validation, batch_size)
        self.dataset_cfg = dataset
        self.model_cfg = model
        self.block_size = model.get("block_size")
        self.eval_iters = eval_iters  # None: fixed windows; N: nanoGPT's estimate over N random minibatches
        self.corpus: Corpus | None = None
        self._training: Prefetching | None = None  # the training windows, with the estimate: drawn ahead of it

    @property
    def evaluates_at_start(self) -> bool:
        """nanoGPT's estimate runs at iteration 0 too, before the first step (and draws its minibatches then)."""
        return self.eval_iters is not None

    @property
    def evaluated_splits(self) -> tuple[str, ...]:
        """With the estimate, the training part first (nanoGPT's `train loss`), then the held-out parts."""
        return ("train",) * (self.eval_iters is not None) + super().evaluated_splits

    def solo_reason(self) -> str | None:
        """A transformer is never widened."""
        return (
            f"task={self.name} trains a transformer language model; the wide engine widens MLPs only (stacking "
            "attention blocks member by member would cost as much as running them one by one)"
        )

    @property
    def data_name(self) -> str:
        """The text's name (`shakespeare_char`)."""
        return self.dataset_cfg.name

    @property
    def train_size(self) -> int:
        """Training windows: the offsets a minibatch window can start at."""
        return len(self.corpus.train) - self.block_size

    def steps_per_epoch(self, batch_size: int) -> int:
        """Steps whose windows hold as many characters as the training part (an epoch, in expectation)."""
        return math.ceil(len(self.corpus.train) / (batch_size * self.block_size))

    def setup(self, device: torch.device) -> None:
        """Read and encode the text, cut its parts and move them to `device`."""
        self.corpus = load_corpus(self.dataset_cfg).to(device)
        parts = {"training": len(self.corpus.train), "test": len(self.corpus.test)}
        if self.validation:  # the validation part may be empty when nothing evaluates it (nanoGPT's 90/10 split)
            parts["validation"] = len(self.corpus.valid)
        check_text_parts(self.block_size, parts)

    def build_model(self) -> nn.Module:
        """The configured model for the text's vocabulary."""
        return instantiate_checked(
            self.model_cfg,
            vocab_size=len(self.corpus.vocabulary),
            what="The model",
            hint=f"task={self.name} trains a transformer: check the model.* overrides against "
            "configs/model/gpt.yaml (e.g. model.n_layer=2 model.n_embd=64).",
        )

    def batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        """Endless minibatches: (batch_size, block_size + 1) windows at uniformly drawn offsets.

        With fixed-window evaluations the offsets come from a CPU generator of their own that starts as a
        copy of torch's (seeded) generator: without dropout they are the draws torch's generator would give
        (nanoGPT's way), and with dropout its draws never move them, so a GPU run trains on a CPU run's
        windows. With nanoGPT's estimate they come from torch's generator itself, interleaved with the
        estimate's draws and dropout's (on a CPU) exactly as nanoGPT's `train.py` interleaves them."""
        if self.eval_iters is None:
            return self._windows(self.corpus.train, batch_size, snapshot_global())  # nothing drawn later moves it
        self._training = Prefetching(self._windows(self.corpus.train, batch_size))
        return self._training

    def _windows(
        self, tokens: torch.Tensor, batch_size: int, generator: torch.Generator | None = None
    ) -> Iterator[torch.Tensor]:
        """Endless (batch_size, block_size + 1) windows of `tokens` at offsets drawn from `generator` (None: torch's
        global one), as nanoGPT's `get_batch` draws them."""
        span = torch.arange(self.block_size + 1, device=tokens.device)
        while True:
            starts = torch.randint(len(tokens) - self.block_size, (batch_size,), generator=generator)
            yield tokens[upload(starts, tokens.device).unsqueeze(1) + span]

    @staticmethod
    def predict(model: nn.Module, windows: torch.Tensor, reduction: str = "mean") -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy of predicting each window's next characters from the ones before, and how many
        the model got right (a classification over the vocabulary at every position)."""
        logits = model(windows[:, :-1])
        logits, targets = logits.reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1)
        return loss_function("classification", logits, targets, reduction), count_correct(logits, targets)

    def loss(self, model: nn.Module, batch: torch.Tensor) -> StepLoss:
        """Mean cross-entropy of predicting each window's next characters, and how many were right."""
        loss, correct = self.predict(model, batch)
        return StepLoss(loss, batch.shape[0] * self.block_size, correct)

    def sharpness_loss(self, size: int | None) -> Callable[[nn.Module], torch.Tensor]:
        """The mean loss over the training part's first `size` windows, side by side from its start (the windows
        an evaluation of the training part would cover)."""
        windows = self.eval_windows("train")
        windows = windows[: fixed_batch(size, len(windows), self.name, "windows")]
        return lambda model: self.predict(model, windows)[0]

    def part(self, split: str) -> torch.Tensor:
        """The token ids of a split's part of the text: `train`, `valid` or `test`."""
        return {"train": self.corpus.train, "valid": self.corpus.valid, "test": self.corpus.test}[split]

    def eval_windows(self, split: str = "test") -> torch.Tensor:
        """The fixed windows an evaluation covers the part with: side by side from its start, each
        predicting `block_size` characters (the last < block_size + 1 characters are left out)."""
        tokens = self.part(split)
        starts = torch.arange(0, len(tokens) - self.block_size, self.block_size, device=tokens.device)
        return tokens[starts.unsqueeze(1) + torch.arange(self.block_size + 1, device=tokens.device)]

    def evaluate(self, model: nn.Module, split: str = "test") -> Evaluation:
        """Mean per-character cross-entropy and next-character accuracy of the part: over its fixed windows, or
        nanoGPT's estimate over `eval_iters` random minibatches."""
        if self.eval_iters is not None:
            return self.estimate(model, split)
        windows = self.eval_windows(split)
        loss_sum = torch.zeros((), device=windows.device)
        correct = torch.zeros((), dtype=torch.int64, device=windows.device)
        for chunk in windows.split(max(1, EVAL_TOKENS // self.block_size)):
            chunk_loss, chunk_correct = self.predict(model, chunk, reduction="sum")
            loss_sum += chunk_loss
            correct += chunk_correct
        count = windows.shape[0] * self.block_size
        return Evaluation.of_sums(loss_sum, correct, count)

    def estimate(self, model: nn.Module, split: str) -> Evaluation:
        """nanoGPT's `estimate_loss` for one split: the float32 mean of `eval_iters` minibatch losses, each of
        `batch_size` windows drawn from torch's global generator as `get_batch` draws them (and the fraction of
        their next characters predicted exactly). nanoGPT draws the next training batch before it estimates,
        so the training stream draws it first."""
        if self._training is not None:
            self._training.prefetch()
        windows = self._windows(self.part(split), self.eval_batch)
        losses, correct = [], torch.zeros((), dtype=torch.int64, device=self.corpus.train.device)
        for _ in range(self.eval_iters):
            loss, right = self.predict(model, next(windows))
            losses.append(loss)
            correct += right
        mean = torch.stack(losses).float().cpu().mean()  # nanoGPT's losses[k] = loss.item() in a CPU float32 tensor
        count = self.eval_iters * self.eval_batch * self.block_size
        return Evaluation(mean.item(), correct.item() / count)
