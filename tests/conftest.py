"""Shared fixtures: one MNIST cache per test session, Hydra composition, and running a job."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # for benchmarks.notebook_loop, the reference loop

from optbench.config import config_dir  # noqa: E402
from optbench.data import ensure_mnist  # noqa: E402
from optbench.train import run_job  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An isolated data cache (also seen by subprocesses through $OPTBENCH_DATA), MNIST unpacked."""
    root = tmp_path_factory.mktemp("data")
    os.environ["OPTBENCH_DATA"] = str(root)
    ensure_mnist(root)
    return root


def make_cfg(*overrides: str) -> DictConfig:
    """Compose the app's config with command-line style overrides."""
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("config", overrides=["progress=false", *overrides])


def run(tmp_path: Path, *overrides: str) -> dict:
    """Run one job in-process into `tmp_path` and return its summary."""
    cfg = make_cfg(*overrides)
    choices = {"optimizer": next((o.split("=")[1] for o in overrides if o.startswith("optimizer=")), "sgd"),
               "model": "mlp"}
    return run_job(cfg, tmp_path, choices)
