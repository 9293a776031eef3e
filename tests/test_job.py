"""The job room: every job setting applies to a single run and to a member of a vectorised group alike.

A single run goes through `settle` and `run_job` (what `optbench.train.main` does); a member through
`run_group`. Each setting below is shown on both paths, from the same composed configs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from conftest import make_cfg
from hydra.conf import ConfigSourceInfo
from omegaconf import DictConfig, OmegaConf

from optbench.errors import OptbenchError
from optbench.job.job import run_job, settle
from optbench.rundir.summary import load_summary
from optbench.runtime.threads import available_cores
from optbench.sweeps.vectorized.engine import run_group

SHORT = ["iterations=20", "eval_every=10", "batch_size=100", "threads=1"]
# The single path is the one every other test takes (through run_job): its cases run in the slow tier.
PATHS = [pytest.param("single", marks=pytest.mark.slow), "vectorised"]


def through(path: str, cfgs: list[DictConfig], dirs: list[Path]) -> list[dict]:
    """Run `cfgs` one by one as the CLI does, or as one vectorised group; their summaries."""
    if path == "vectorised":
        return run_group(cfgs, dirs)
    summaries = []
    for cfg, out_dir in zip(cfgs, dirs):
        try:
            previous = settle(cfg, out_dir)
            summaries.append(previous if previous is not None else run_job(cfg, out_dir))
        except OptbenchError as exc:
            logging.getLogger("optbench.train").error("%s", exc)  # as train.main logs it (a sweep goes on)
            summaries.append({"status": "failed"})
    return summaries


def members(*overrides: str) -> list[DictConfig]:
    return [make_cfg("optimizer=sgd", *SHORT, *overrides), make_cfg("optimizer=adam", *SHORT, *overrides)]


@pytest.mark.parametrize("path", PATHS)
def test_resume_skips_a_completed_run_of_the_same_config(tmp_path, path):
    dirs = [tmp_path / "a", tmp_path / "b"]
    first = through(path, members(), dirs)
    stamps = [os.stat(d / "train.csv").st_mtime_ns for d in dirs]
    again = through(path, members("resume=true"), dirs)
    assert [s["finished_at"] for s in again] == [s["finished_at"] for s in first]  # not run again
    assert [os.stat(d / "train.csv").st_mtime_ns for d in dirs] == stamps
    changed = through(path, members("resume=true", "optimizer.lr=0.05"), dirs)
    assert [s["status"] for s in changed] == ["completed"] * 2 and changed[0]["started_at"] >= first[0]["finished_at"]


def with_epochs(command_line: list[str]) -> list[DictConfig]:
    """Members whose config says epochs=1 (as a preset can), run with `command_line` as their overrides."""
    cfgs = [make_cfg(cfg, *SHORT[1:], "epochs=1") for cfg in ("optimizer=sgd", "optimizer=adam")]
    for cfg in cfgs:
        OmegaConf.update(cfg, "hydra.overrides.task", [*command_line, *SHORT[1:]], merge=False)
        cfg.iterations = 20
    return cfgs


@pytest.mark.parametrize("path", PATHS)
def test_iterations_on_the_command_line_replace_a_presets_epochs(tmp_path, path):
    both = through(path, with_epochs(["epochs=1", "iterations=20"]), [tmp_path / "a", tmp_path / "b"])
    assert [s["status"] for s in both] == ["failed"] * 2  # both given: refused
    steps = through(path, with_epochs(["iterations=20"]), [tmp_path / "c", tmp_path / "d"])
    assert [s["iterations"] for s in steps] == [20, 20]  # not one epoch of 600 steps


@pytest.mark.parametrize("path", PATHS)
def test_a_launcher_running_jobs_side_by_side_sets_their_threads(tmp_path, path):
    cfgs = members("threads=null")
    for cfg in cfgs:  # joblib running two jobs at once on this machine's cores
        cfg.hydra.launcher = {"_target_": "hydra_plugins.hydra_joblib_launcher.JoblibLauncher", "n_jobs": 2}
    summaries = through(path, cfgs, [tmp_path / "a", tmp_path / "b"])
    assert [s["threads"] for s in summaries] == [max(1, available_cores() // 2)] * 2


@pytest.mark.parametrize("path", PATHS)
def test_a_hidden_user_config_is_warned_about(tmp_path, path, caplog):
    user = tmp_path / "mine"
    (user / "optimizer").mkdir(parents=True)
    (user / "optimizer" / "adam.yaml").write_text("lr: 0.5\n")
    cfgs = members()
    for cfg in cfgs:  # `--config-dir mine`: Hydra lists it among the config sources
        cfg.hydra.runtime.config_sources.append(
            ConfigSourceInfo(path=str(user), schema="file", provider="command-line")
        )
    with caplog.at_level(logging.WARNING):
        summaries = through(path, cfgs, [tmp_path / "a", tmp_path / "b"])
    hidden = [r for r in caplog.records if "adam.yaml is hidden by optbench's own config" in r.getMessage()]
    assert len(hidden) == 2 and [s["status"] for s in summaries] == ["completed"] * 2


def test_a_rejected_setting_leaves_only_a_failed_summary_on_both_paths(tmp_path):
    for path in ("single", "vectorised"):
        out = [tmp_path / path / "a", tmp_path / path / "b"]
        summaries = through(path, [make_cfg("batch_size=0", *SHORT[:2]), make_cfg("optimizer=adam", *SHORT)], out)
        assert [s["status"] for s in summaries] == ["failed", "completed"]
        assert [p.name for p in out[0].iterdir()] == ["summary.json"]
        assert "batch_size=0 must be a positive whole number" in load_summary(out[0])["error"]
