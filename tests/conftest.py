"""Shared fixtures: one MNIST cache per test session, Hydra composition, and running a job."""

from __future__ import annotations

import copy
import functools
import os
import sys
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import DictConfig

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # for benchmarks.notebook_loop, the reference loop

from optbench.config.compose import compose  # noqa: E402
from optbench.data.datasets import ensure_mnist  # noqa: E402
from optbench.job.job import run_job  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An isolated data cache (also seen by subprocesses through $OPTBENCH_DATA), MNIST unpacked."""
    root = tmp_path_factory.mktemp("data")
    os.environ["OPTBENCH_DATA"] = str(root)
    ensure_mnist(root)
    return root


def make_cfg(*overrides: str) -> DictConfig:
    """Compose the app's config with command-line style overrides (no progress bar), on the CPU unless
    the overrides name a device: on a GPU machine the CPU tests still assert the CPU's bits, and the
    tests marked `device` choose their device themselves."""
    device = [] if any(o.startswith(("device=", "device.type=")) for o in overrides) else ["device=cpu"]
    return copy.deepcopy(_composed(("progress=false", *device, *overrides)))


@functools.cache
def _composed(overrides: tuple[str, ...]) -> DictConfig:
    """Hydra's composition of `overrides`, once per session (the shipped configs do not change while the tests
    run); make_cfg hands out copies, which a test may change."""
    return compose(*overrides)


def run(tmp_path: Path, *overrides: str) -> dict:
    """Run one job in-process into `tmp_path` and return its summary."""
    return run_job(make_cfg(*overrides), tmp_path)


def assert_same_metrics(got: Path, expected: Path, what: str) -> None:
    """Two runs' metric CSVs are equal bit for bit, except test.csv's `seconds`: a clock reading,
    never equal between two runs."""

    def read(path: Path) -> pd.DataFrame:
        return pd.read_csv(path).drop(columns="seconds", errors="ignore")

    pd.testing.assert_frame_equal(read(got), read(expected), check_exact=True, obj=what)
