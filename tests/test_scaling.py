"""The batch-size scaling figure (on hand-made runs) and the advice for a run that diverges at once."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import run
from test_report import make_run, report

from optbench.reporting.groups import group_runs
from optbench.reporting.scaling import scaling_points
from optbench.reporting.table import summary_table
from optbench.rundir.reader import discover, load_run

# Test losses every 10 steps; the target is test loss <= 0.5.
REACH_AT = {10: [0.4], 20: [0.9, 0.4], 30: [0.9, 0.8, 0.4], 40: [0.9, 0.8, 0.7, 0.4]}
NEVER = [0.9, 0.8, 0.7, 0.6]


def write_sweep(root, plan):
    """Hand-made runs: plan maps (optimizer, batch size, lr tag) to the steps each seed takes (None: never)."""
    for (optimizer, batch, tag), steps in plan.items():
        for seed, step in enumerate(steps):
            path = make_run(
                root / f"{optimizer}_{batch}_{tag}_{seed}",
                optimizer,
                seed,
                REACH_AT[step] if step else NEVER,
                batch_size=batch,
            )
            if tag != "a":  # a second lr: a config difference the report labels by
                config = path / ".hydra" / "config.yaml"
                config.write_text(config.read_text().replace("lr: 0.1", "lr: 0.01"))
                overrides = path / ".hydra" / "overrides.yaml"
                overrides.write_text(overrides.read_text() + "- optimizer.lr=0.01\n")


PLAN = {
    ("sgd", 8, "a"): [40, 40, 30],
    ("sgd", 8, "b"): [30, 30, 30],  # best lr at batch 8: median 30
    ("sgd", 16, "a"): [20, 20, None],
    ("sgd", 16, "b"): [None, None, None],
    ("sgd", 32, "a"): [20, None, None],  # median over seeds: missed
    ("adam", 8, "a"): [40, 40, 40],
    ("adam", 16, "a"): [20, 20, 30],
    ("adam", 32, "a"): [10, 10, 10],
}


def test_scaling_points_take_the_best_setting_per_batch_size(tmp_path):
    write_sweep(tmp_path / "runs", PLAN)
    groups = group_runs([load_run(path) for path in discover([tmp_path / "runs"])])
    points = scaling_points(groups, summary_table(groups, window=1)).set_index(["optimizer", "batch_size"])
    assert points.steps.to_dict() == {
        ("adam", 8): 40,
        ("adam", 16): 20,
        ("adam", 32): 10,
        ("sgd", 8): 30,
        ("sgd", 16): 20,
        ("sgd", 32): math.inf,
    }
    assert "lr=0.01" in points.loc[("sgd", 8), "label"] and "lr=0.01" not in points.loc[("sgd", 16), "label"]


@pytest.mark.slow
def test_the_report_draws_batch_scaling_only_when_batch_sizes_vary(tmp_path):
    write_sweep(tmp_path / "runs", PLAN)
    result = report(str(tmp_path / "runs"), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "batch_scaling.png").exists()
    assert "batch_scaling.png" in (tmp_path / "out" / "report.html").read_text()
    write_sweep(tmp_path / "one", {("sgd", 8, "a"): [10], ("adam", 8, "a"): [20]})
    result = report(str(tmp_path / "one"), "-o", str(tmp_path / "out1"), cwd=tmp_path)
    assert result.returncode == 0 and not (tmp_path / "out1" / "batch_scaling.png").exists()


@pytest.mark.slow
def test_a_run_diverging_before_its_first_evaluation_names_its_lr(tmp_path):
    # SGD's notebook lr on quadratic_deep diverges at step 4, long before the first epoch's evaluation.
    summary = run(tmp_path / "run", "task=quadratic_deep", "optimizer=sgd")
    assert summary["status"] == "diverged" and summary["diverged_at"] == 4
    advice = summary["advice"]
    assert "optimizer.lr=0.1" in advice and "optimizer.lr=0.01" in advice
    assert "optbench -m hydra/sweeper=tune task=quadratic_deep optimizer=sgd" in advice
    result = report(str(tmp_path / "run"), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert advice in (tmp_path / "out" / "summary.md").read_text()
    # a run that diverges after an evaluation has numbers to go by: no advice
    later = run(tmp_path / "later", "task=quadratic_deep", "optimizer=sgd", "optimizer.lr=0.05", "eval_every=1")
    assert later["status"] == "diverged" and "advice" not in later


@pytest.mark.parametrize("steps", [[10, 20], [np.inf, np.inf]])
def test_no_figure_without_two_reached_batch_sizes(tmp_path, steps):
    from optbench.reporting.scaling import applies

    points = pd.DataFrame({"optimizer": ["sgd", "sgd"], "batch_size": [8, 16], "steps": steps, "label": ["a", "b"]})
    assert applies(points) == bool(np.isfinite(steps).all())
