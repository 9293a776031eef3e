"""Every setting checked once: a walk over every numeric setting of every shipped config, fed bad values.

The walk finds the settings itself (a setting added to a YAML file later is covered without touching
this file): each numeric leaf of each task preset, optimizer, schedule, logger, device and sweeper is
set to 0, -1, abc, nan and inf. Each value is either refused by `check_config` with one paragraph
naming the setting (the CLI's exit status 2, tested below through the real command line), or it is
legal and the job then runs (a short run: completed or diverged, never failed).
"""

from __future__ import annotations

import copy
import functools
import json
import math
from pathlib import Path

import pytest
from conftest import make_cfg
from omegaconf import DictConfig, ListConfig, OmegaConf
from test_cli import cli

import optbench
from optbench.config.sources import config_dir
from optbench.config.validation import check_config, check_launcher, check_sweeper
from optbench.data.datasets import DEBIAN_FASHION_MNIST
from optbench.errors import OptbenchError
from optbench.job.job import run_job

BAD = (0, -1, "abc", math.nan, math.inf)
CONFIGS = Path(config_dir())
PRESETS = sorted(p.stem for p in (CONFIGS / "task").glob("*.yaml"))
OPTIMIZERS = sorted(
    p.relative_to(CONFIGS / "optimizer").with_suffix("").as_posix() for p in (CONFIGS / "optimizer").rglob("*.yaml")
)
GROUPS = {group: sorted(p.stem for p in (CONFIGS / group).glob("*.yaml")) for group in ("schedule", "logger", "device")}
# A legal value runs for a few steps on a small version of the task: the walked setting keeps its value.
SHORT = {"iterations": 3, "eval_every": 3, "epochs": None, "progress": False, "auto_report": False}
SMALL = {  # per preset: a model and data small enough for a few seconds
    "shakespeare_char": {"model.n_layer": 1, "model.n_embd": 16, "model.n_head": 2, "model.block_size": 8},
    **{
        preset: {  # nanoGPT's recipes: their schedule's cosine ends at lr_decay_iters, past a 3-step run's warm-up
            "model.n_layer": 1,
            "model.n_embd": 16,
            "model.n_head": 2,
            "model.block_size": 8,
            "batch_size": 4,
            "task.eval_iters": 2,
            "schedule.lr_decay_iters": 2000,
        }
        for preset in ("shakespeare_char_gpu", "shakespeare_char_nanogpt_cpu")
    },
    "fmnist_2c2d": {"model.channels": [2, 2], "model.hidden": 8},
    "eos": {"task.train_examples": 200, "model.hidden": [8, 8]},  # full batch: 200 examples, not 5,000
}
SMALL_OPTIONS = {"schedule=nanogpt": {"schedule.lr_decay_iters": 2000}}  # per walked option, as SMALL per preset


def numeric_leaves(node: DictConfig | ListConfig, prefix: str = "") -> list[str]:
    """Dotted paths of the number-valued leaves under `node` (list items included; interpolations,
    which repeat another node, left out)."""
    keys = range(len(node)) if isinstance(node, ListConfig) else list(node.keys())
    paths = []
    for key in keys:
        path = f"{prefix}{key}"
        if OmegaConf.is_interpolation(node, key) or path == "hydra":  # Hydra's own node: walked by the plugin test
            continue
        value = node[key]
        if isinstance(value, (DictConfig, ListConfig)):
            paths += numeric_leaves(value, f"{path}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            paths.append(path)
    return paths


@functools.cache
def composed(overrides: tuple[str, ...]) -> DictConfig:
    """The config `overrides` compose to (composed once; callers change copies)."""
    return make_cfg(*overrides)


def cases(overrides: tuple[str, ...], under: str = "") -> list[tuple[tuple[str, ...], str, object]]:
    """(overrides, leaf, value) for every numeric leaf of the config `overrides` compose to (below `under`)."""
    cfg = composed(overrides)
    leaves = [path for path in numeric_leaves(cfg) if path.startswith(under)]
    return [(overrides, path, value) for path in leaves for value in BAD]


# The configs walked: every task preset whole; every optimizer, schedule, logger and device option for its own
# settings, whose legal values run on the thermometer (a 2-D weight and a bias, 11 points: quick).
CONFIGS_WALKED = [
    *(((f"task={preset}",), "") for preset in PRESETS),
    *(((f"optimizer={name}", "task=thermometer"), "optimizer.") for name in OPTIMIZERS),
    *(((f"{group}={name}", "task=thermometer"), f"{group}.") for group, names in GROUPS.items() for name in names),
]
HEAVY = {
    "task=mnist_mlp",
    "task=algoperf_mnist",
    "task=fmnist_mlp",
    "task=fmnist_2c2d",
    "task=shakespeare_char",
    "task=shakespeare_char_gpu",
    "task=shakespeare_char_nanogpt_cpu",
}


def _legal_runs_tier(walked: tuple[tuple[str, ...], str]) -> object:
    """The legal values of the data-heavy presets and of the 39 optimizers (222 short runs) run in the slow
    tier; the fast tier runs the rest (the cheap presets, schedules, loggers, devices) and walks every verdict."""
    slow = HEAVY & set(walked[0]) or walked[1] == "optimizer."
    return pytest.param(walked, marks=pytest.mark.slow) if slow else walked


# Two optimizers with rules beyond their constructor's (LBFGS's OPTIMIZER_RULES; muon's param_groups with their
# own optimizers) are walked in the fast tier, besides each preset's own; every other optimizer in the slow tier.
FAST_OPTIMIZERS = {"optimizer=lbfgs", "optimizer=muon"}


def _verdicts_tier(walked: tuple[tuple[str, ...], str]) -> object:
    """Every task preset, schedule, logger and device, and the FAST_OPTIMIZERS, in the fast tier."""
    slow = walked[1] == "optimizer." and not FAST_OPTIMIZERS & set(walked[0])
    return pytest.param(walked, marks=pytest.mark.slow) if slow else walked


def _config_id(value: object) -> str:
    return " ".join(value[0]) if isinstance(value, tuple) and isinstance(value[0], tuple) else str(value)


def _with(cfg: DictConfig, settings: dict[str, object]) -> DictConfig:
    changed = copy.deepcopy(cfg)
    for key, value in settings.items():
        OmegaConf.update(changed, key, value, merge=False)
    return changed


def _named(message: str, overrides: tuple[str, ...], path: str) -> bool:
    """The message names the setting, or (for a constructor's own check) the option being built."""
    leaf = [part for part in path.split(".") if not part.isdigit()][-1]
    return leaf in message or any(override.split("=")[0] + "=" in message for override in overrides)


def verdict(overrides: tuple[str, ...], path: str, value: object) -> str | None:
    """check_config's message for the config with `path` set to `value` (None: legal)."""
    cfg = composed(overrides)
    original = OmegaConf.select(cfg, path)
    OmegaConf.update(cfg, path, value, merge=False)  # in place and put back: copying every config is slow
    try:
        check_config(cfg)
    except OptbenchError as error:
        return str(error)
    else:
        return None
    finally:
        OmegaConf.update(cfg, path, original, merge=False)


@functools.cache
def legal_values(overrides: tuple[str, ...], under: str) -> list[tuple[str, object]]:
    """Walk the config's numeric settings with every BAD value: assert each refusal is one paragraph naming
    the setting; return the (setting, value) pairs that are legal."""
    legal, badly_told = [], []
    for _, path, value in cases(overrides, under):
        message = verdict(overrides, path, value)
        if message is None:
            legal.append((path, value))
        elif "\n" in message or "Traceback" in message or not _named(message, overrides, path):
            badly_told.append(f"{path}={value!r}: {message}")
    assert not badly_told, badly_told
    return legal


@pytest.mark.parametrize("walked", [_verdicts_tier(w) for w in CONFIGS_WALKED], ids=_config_id)
def test_every_numeric_setting_is_refused_with_one_message_or_legal(walked):
    legal = legal_values(*walked)
    assert all(value in (0, -1) for _, value in legal), legal  # abc, nan, inf never are


@pytest.mark.parametrize("walked", [_legal_runs_tier(w) for w in CONFIGS_WALKED], ids=_config_id)
def test_every_legal_value_runs(tmp_path, walked):
    failed = []
    overrides = walked[0]
    task = composed(overrides).task.name
    smaller = {**SHORT, **SMALL.get(task, {}), **SMALL_OPTIONS.get(overrides[0], {})}
    for path, value in legal_values(*walked):
        if task.startswith("fmnist") and not DEBIAN_FASHION_MNIST.exists():
            pytest.skip("Fashion-MNIST is not installed (Debian's dataset-fashion-mnist)")
        small = {key: v for key, v in smaller.items() if key != path and not path.startswith(f"{key}.")}
        cfg = _with(composed(overrides), {path: value, **small})  # _with copies the cached config
        summary = run_job(cfg, tmp_path / f"{path}={value}")
        if summary["status"] not in ("completed", "diverged"):
            failed.append(f"{path}={value!r}: {summary.get('error')}")
    assert not failed, failed


def test_the_walk_reaches_every_group_and_the_known_regression():
    presets = [walked for walked in CONFIGS_WALKED if walked[1] == ""]  # each preset's walk covers every group
    paths = {(overrides, path) for walked in presets for overrides, path, _ in cases(*walked)}
    assert (("task=mnist_mlp",), "batch_size") in paths and (("task=shakespeare_char",), "batch_size") in paths
    assert {path.split(".")[0] for _, path in paths} >= {
        "iterations",
        "lookahead",
        "dataset",
        "model",
        "optimizer",
        "schedule",
        "task",
    }
    assert verdict(("task=mnist_mlp",), "batch_size", 0).startswith("batch_size=0 must be a positive whole number")


@pytest.mark.parametrize(
    "settings, check",
    [
        *((f"hydra/sweeper={name}", check_sweeper) for name in ("tune", "deepobs")),
        ("hydra/launcher=vectorized", check_launcher),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_every_numeric_sweeper_and_launcher_setting(settings, check):
    """The plugins' settings: refused with one message, or legal (those are run by the slow test below)."""
    node = make_cfg(settings).hydra[settings.split("/")[1].split("=")[0]]
    legal = []
    for path in numeric_leaves(node):
        for value in BAD:
            changed = _with(node, {path: value})
            try:
                check(OmegaConf.to_container(changed, resolve=True))
            except OptbenchError as error:
                assert "\n" not in str(error) and path.split(".")[0] in str(error), str(error)
                continue
            legal.append((path, value))
    assert legal == LEGAL_PLUGIN_VALUES.get(settings, [])


# Plugin settings whose walked values are legal (each run by test_legal_plugin_values_run).
LEGAL_PLUGIN_VALUES = {
    "hydra/sweeper=tune": [("tuning_seed", 0), ("tuning_seed", -1), ("search_seed", 0)],
    "hydra/sweeper=deepobs": [
        *((f"seeds.{i}", v) for i in range(10) for v in (0, -1)),
        ("tuning_seed", 0),
        ("tuning_seed", -1),
        ("search_seed", 0),
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "setting", ["hydra.sweeper.tuning_seed=-1", "hydra.sweeper.search_seed=0", "hydra.sweeper.seeds=[0,-1]"]
)
def test_legal_plugin_values_run(tmp_path, setting):
    seeds = [] if setting.startswith("hydra.sweeper.seeds=") else ["hydra.sweeper.seeds=1"]
    result = cli(
        "-m",
        "hydra/sweeper=tune",
        "task=rosenbrock",
        "optimizer=sgd",
        "iterations=20",
        "eval_every=10",
        "hydra.sweeper.trials=2",
        "hydra.sweeper.search=random",
        *seeds,
        setting,
        f"hydra.sweep.dir={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert all(json.loads(p.read_text())["status"] == "completed" for p in tmp_path.glob("*/summary.json"))


def _refused_by_the_cli(tmp_path: Path, *overrides: str) -> str:
    result = cli(*overrides, "device=cpu", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    assert {p.name for p in (tmp_path / "run").iterdir()} <= {".hydra", "optbench.log", "summary.json"}  # no CSV
    return result.stderr


def test_batch_size_zero_is_one_message_and_exit_status_2(tmp_path):
    stderr = _refused_by_the_cli(tmp_path, "batch_size=0")
    errors = [line for line in stderr.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and "batch_size=0 must be a positive whole number, e.g. batch_size=100." in errors[0]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "failed"


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("setting", ["batch_size=0", "iterations=-1", "seed=abc", "eval_every=nan"])
def test_every_preset_refuses_bad_settings_from_the_cli(tmp_path, preset, setting):
    stderr = _refused_by_the_cli(tmp_path, f"task={preset}", setting)
    assert f"{setting.split('=')[0]}=" in stderr


@pytest.mark.slow
@pytest.mark.parametrize("setting", ["hydra.sweeper.trials=0", "hydra.sweeper.digits=nan", "hydra.sweeper.batch=-1"])
def test_sweeper_settings_are_one_message_and_exit_status_2(tmp_path, setting):
    result = cli("-m", "hydra/sweeper=tune", "task=rosenbrock", setting, f"hydra.sweep.dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{setting.split('=')[0]}=" in result.stderr and not list(tmp_path.glob("**/train.csv"))


def test_the_python_api_refuses_the_same_inputs_and_writes_nothing(tmp_path):
    with pytest.raises(OptbenchError, match=r"optbench.run\(\) takes overrides as strings.*given 123 \(int\)"):
        optbench.run(123)
    with pytest.raises(OptbenchError, match="optbench.sweep"):
        optbench.sweep("optimizer=sgd", 0.1)
    with pytest.raises(OptbenchError, match="batch_size=0 must be a positive whole number"):
        optbench.run("batch_size=0", "device=cpu", out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
