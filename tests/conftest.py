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

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname  # noqa: E402
from hydra.core.override_parser.overrides_parser import OverridesParser  # noqa: E402
from hydra.errors import ConfigCompositionException  # noqa: E402

from optbench.config.compose import check_length_overrides, compose  # noqa: E402
from optbench.config.sources import config_dir  # noqa: E402
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
    tests marked `device` choose their device themselves. Each call gives a new config, which a test may change."""
    device = [] if any(o.startswith(("device=", "device.type=")) for o in overrides) else ["device=cpu"]
    return compose_by_parts("progress=false", *device, *overrides)


GROUPS = {path.name for path in Path(config_dir()).iterdir() if path.is_dir()}


def _is_group_override(override: str) -> bool:
    key = override.split("=", 1)[0].lstrip("+~")
    return "/" in key or key in GROUPS


def compose_by_parts(*overrides: str) -> DictConfig:
    """`compose(*overrides)` the way Hydra builds it, with the group choices' composition shared between tests.

    Hydra composes the defaults list from the group overrides (`optimizer=adam`), then applies the value
    overrides (`optimizer.lr=0.1`) to the result, in `ConfigLoaderImpl._apply_overrides_to_config`. Composing
    costs ~80 ms here and the suite asks for ~300 different override lists over ~160 group choices, so the
    second step (~6 ms) runs here on a copy of the cached first one, and the `hydra` node records every override as
    Hydra's would. test_config checks the result equals `compose` itself; a sweep or an error goes to `compose`.
    """
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    if any(o.is_sweep_override() for o in parsed):
        return compose(*overrides)
    groups = tuple(sorted(o for o in overrides if _is_group_override(o)))
    cfg = copy.deepcopy(_composed_groups(groups))
    try:
        ConfigLoaderImpl._apply_overrides_to_config([o for o in parsed if not _is_group_override(o.input_line)], cfg)
    except ConfigCompositionException:
        return compose(*overrides)  # Hydra's own error, raised the way the CLI meets it
    cfg.hydra.overrides.task = [o.input_line for o in parsed if not o.is_hydra_override()]
    cfg.hydra.overrides.hydra = [o.input_line for o in parsed if o.is_hydra_override()]
    naming = cfg.hydra.job.config.override_dirname
    cfg.hydra.job.override_dirname = get_overrides_dirname(
        [o for o in parsed if not o.is_hydra_override()], list(naming.exclude_keys), naming.item_sep, naming.kv_sep
    )
    check_length_overrides(list(overrides), cfg)
    return cfg


@functools.cache
def _composed_groups(groups: tuple[str, ...]) -> DictConfig:
    """Hydra's composition of these group choices, once per session (the shipped configs do not change while
    the tests run); callers change copies."""
    return compose(*groups)


def run(tmp_path: Path, *overrides: str) -> dict:
    """Run one job in-process into `tmp_path` and return its summary."""
    return run_job(make_cfg(*overrides), tmp_path)


def assert_same_metrics(got: Path, expected: Path, what: str) -> None:
    """Two runs' metric CSVs are equal bit for bit, except test.csv's `seconds`: a clock reading,
    never equal between two runs."""

    def read(path: Path) -> pd.DataFrame:
        return pd.read_csv(path).drop(columns="seconds", errors="ignore")

    pd.testing.assert_frame_equal(read(got), read(expected), check_exact=True, obj=what)
