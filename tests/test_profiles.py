"""Performance profiles across tasks, checked against hand-computed ratios."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from optbench.report import build_report
from optbench.report.profiles import profiles, ratios
from test_report import make_run


def table(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["task", "label", "iters_to_target"])


def test_ratios_charge_misses_and_absent_runs_as_infinite():
    ratio = ratios(table([("a", "adam", 10), ("a", "sgd", 20), ("b", "adam", 30), ("b", "sgd", math.inf),
                          ("c", "adam", math.inf), ("c", "sgd", math.inf), ("d", "adam", 5),
                          ("none", "adam", math.nan)]))  # a task without a target is left out
    assert list(ratio.columns) == ["a", "b", "c", "d"]
    assert ratio.loc["adam"].tolist() == [1.0, 1.0, math.inf, 1.0]
    assert ratio.loc["sgd"].tolist() == [2.0, math.inf, math.inf, math.inf]  # sgd did not run task d


def test_profile_and_score_match_the_step_function():
    rho, scores = profiles(table([("a", "adam", 10), ("a", "sgd", 20), ("b", "adam", 30), ("b", "sgd", math.inf)]))
    assert rho.adam.eq(1.0).all()
    assert rho.sgd[rho.index < 2].eq(0.0).all() and rho.sgd[rho.index >= 2].eq(0.5).all()
    by_label = scores.set_index("label")
    assert by_label.loc["adam", "score"] == pytest.approx(1.0)
    assert by_label.loc["sgd", "score"] == pytest.approx(0.5 * (4 - 2) / 3, abs=0.005)  # area under the step
    assert scores.label.tolist() == ["adam", "sgd"]
    assert by_label.loc["sgd", ["tasks_fastest", "tasks_reached", "tasks"]].tolist() == [0, 1, 2]


def test_a_report_over_two_tasks_writes_profiles(tmp_path):
    runs = tmp_path / "runs"
    make_run(runs / "a_adam", "adam", 0, [0.4, 0.3], task="a")  # reaches 0.5 at 10
    make_run(runs / "a_sgd", "sgd", 0, [0.6, 0.45], task="a")   # at 20
    make_run(runs / "b_adam", "adam", 0, [0.9, 0.8, 0.4], task="b")  # at 30
    make_run(runs / "b_sgd", "sgd", 0, [0.9, 0.8, 0.7], task="b")    # never
    build_report([runs], tmp_path / "out")
    scores = pd.read_csv(tmp_path / "out" / "performance_profiles.csv").set_index("label")
    assert scores.loc["adam", "score"] == pytest.approx(1.0)
    assert scores.loc["sgd", "score"] == pytest.approx(1 / 3, abs=0.005)
    assert (tmp_path / "out" / "performance_profile.png").exists()
    markdown = (tmp_path / "out" / "summary.md").read_text()
    assert "## Performance profiles across tasks" in markdown and "| adam  | 1.000" in markdown


def test_one_task_has_no_profiles(tmp_path):
    make_run(tmp_path / "runs" / "x", "adam", 0, [0.4])
    build_report([tmp_path / "runs"], tmp_path / "out")
    assert not (tmp_path / "out" / "performance_profiles.csv").exists()
