"""The training clock: AlgoPerf's accumulated submission time, warm-up and evaluations left out."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


class TrainingClock:
    """Seconds spent training, warm-up and evaluations excluded: AlgoPerf's accumulated submission time.

    The first step is the warm-up: it pays for one-off costs (cuBLAS/cuDNN handles, first-use kernel
    loads, the optimizer's state), which would make a sweep's first job look slower. The clock starts
    when it is done (`start()`), and `warmup_seconds` reports it. `paused()` leaves an evaluation out.
    On a GPU the marks are CUDA events, which time the steps themselves without a host sync; readings
    are taken at evaluations, after the recorder's flush has waited for the queued steps anyway.
    """

    def __init__(self, device: torch.device | None = None) -> None:
        self._cuda = device is not None and device.type == "cuda"
        self._excluded = 0.0
        self._created = self._mark()
        self._started: Any = None  # the mark taken when the warm-up step is done

    def _mark(self) -> Any:
        if not self._cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def _between(self, start: Any, end: Any) -> float:
        if not self._cuda:
            return end - start
        end.synchronize()
        return start.elapsed_time(end) / 1000

    def start(self) -> None:
        """The warm-up step is done (or, on a GPU, queued): training time counts from here."""
        self._started = self._mark()

    @property
    def warmup_seconds(self) -> float | None:
        """Seconds the warm-up step took, or None before it is done."""
        return None if self._started is None else self._between(self._created, self._started)

    @property
    def seconds(self) -> float:
        """Training seconds so far (0 until the warm-up step is done)."""
        if self._started is None:
            return 0.0
        return self._between(self._started, self._mark()) - self._excluded

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Leave the block's time out of the training seconds (the block ends synchronised: an
        evaluation reads its metrics back to the host). Before the clock starts nothing is counted anyway."""
        if self._started is None:
            yield
            return
        start = time.perf_counter()
        try:
            yield
        finally:
            self._excluded += time.perf_counter() - start
