"""Performance profiles across tasks, checked against hand-computed ratios and against the numbers
AlgoPerf's own scoring code computes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from test_report import make_run

from optbench.reporting.build import build_report
from optbench.reporting.profiles import profiles, ratios


def table(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["task", "label", "iters_to_target"])


def test_ratios_charge_misses_and_absent_runs_as_infinite():
    ratio = ratios(
        table(
            [
                ("a", "adam", 10),
                ("a", "sgd", 20),
                ("b", "adam", 30),
                ("b", "sgd", math.inf),
                ("c", "adam", math.inf),
                ("c", "sgd", math.inf),
                ("d", "adam", 5),
                ("none", "adam", math.nan),
            ]
        )
    )  # a task without a target is left out
    assert list(ratio.columns) == ["a", "b", "c", "d"]
    # Task c, which nobody reached, is inf / inf = NaN in AlgoPerf's code: it never counts as <= tau.
    assert ratio.loc["adam", ["a", "b", "d"]].tolist() == [1.0, 1.0, 1.0] and math.isnan(ratio.loc["adam", "c"])
    assert ratio.loc["sgd", ["a", "b", "d"]].tolist() == [2.0, math.inf, math.inf]  # sgd did not run task d
    assert math.isnan(ratio.loc["sgd", "c"])


def test_times_over_four_times_the_fastest_are_misses():
    ratio = ratios(table([("a", "adam", 100), ("a", "sgd", 400), ("a", "rmsprop", 401)]))
    assert ratio.loc[["adam", "sgd", "rmsprop"], "a"].tolist() == [1.0, 4.0, math.inf]  # exactly 4x still counts


INF = math.inf
# Steps to target per seed on 8 tasks (AlgoPerf's 8 base workloads; each seed is one of its studies):
# ties, misses, a median over a miss, a task nobody reaches, exactly 4x the fastest, a task not run.
ALGOPERF_TIMES = {
    "adam": {
        "t0": [100, 120, 110],
        "t1": [300, 300, 300],
        "t2": [INF, 500, 400],
        "t3": [1000, 900, 800],
        "t4": [INF, INF, INF],
        "t5": [200, 200, 200],
        "t6": [50, 70, 60],
        "t7": [400, INF, INF],
    },
    "sgd": {
        "t0": [200, 220, 210],
        "t1": [300, 300, 300],
        "t2": [600, 700, 800],
        "t3": [INF, INF, 100],
        "t4": [INF, INF, INF],
        "t5": [900, 800, 850],
        "t6": [240, 260, 250],
        "t7": [1000, 1200, 1100],
    },
    "momentum": {
        "t0": [150, 160, 170],
        "t1": [INF, 900, 1200],
        "t2": [300, 350, 325],
        "t3": [500, 450, 400],
        "t4": [INF, INF, INF],
        "t5": [INF, INF, INF],
        "t6": [61, 59, 60],
        "t7": [2500, 2000, 3000],
    },
    "rmsprop": {
        "t0": [400, 440, 420],
        "t1": [250, 260, 255],
        "t3": [700, 600, 650],
        "t4": [INF, INF, INF],
        "t5": [199, 201, 200],
        "t6": [180, 179, 181],
        "t7": [4400, 4401, 4399],
    },
}
# What mlcommons/algorithmic-efficiency's scoring code (commit of 2025-09-05) computed from that table:
# performance_profile.compute_performance_profiles(time_col="global_step", min_tau=1, max_tau=4,
# num_points=100) and score_submissions.compute_leaderboard_score (normalize=True), each study one
# trial whose global_step is the time above (a miss: the target metric never reached).
ALGOPERF_SCORES = {
    "adam": 0.6799242424242425,
    "sgd": 0.4071969696969697,
    "momentum": 0.5530303030303041,
    "rmsprop": 0.40782828282828293,
}
ALGOPERF_RHO = {
    "adam": [0.375, 0.75, 0.75, 0.75],
    "sgd": [0.125, 0.375, 0.5, 0.5],
    "momentum": [0.375, 0.5, 0.625, 0.625],
    "rmsprop": [0.25, 0.375, 0.5, 0.75],
}  # tau 1, 2, 3, 4


def test_scores_equal_algoperfs_own_scoring_code():
    medians = [
        (task, label, float(np.median(times)))
        for label, tasks in ALGOPERF_TIMES.items()
        for task, times in tasks.items()
    ]
    rho, scores = profiles(table(medians))
    assert len(rho) == 100 and rho.index[0] == 1.0 and rho.index[-1] == 4.0
    for label, expected in ALGOPERF_SCORES.items():
        assert scores.set_index("label").loc[label, "score"] == pytest.approx(expected, rel=1e-12), label
        assert rho[label].iloc[[0, 33, 66, 99]].tolist() == ALGOPERF_RHO[label], label


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
    make_run(runs / "a_sgd", "sgd", 0, [0.6, 0.45], task="a")  # at 20
    make_run(runs / "b_adam", "adam", 0, [0.9, 0.8, 0.4], task="b")  # at 30
    make_run(runs / "b_sgd", "sgd", 0, [0.9, 0.8, 0.7], task="b")  # never
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


def test_a_report_scores_both_clocks(tmp_path):
    """Steps and training seconds (test.csv's `seconds`) each get a profile, as AlgoPerf reports both."""
    runs = tmp_path / "runs"
    for name, task, losses, seconds in [
        ("a_adam", "a", [0.4, 0.3], [1.0, 2.0]),
        ("a_sgd", "a", [0.6, 0.45], [0.2, 0.4]),
        ("b_adam", "b", [0.4, 0.3], [3.0, 6.0]),
        ("b_sgd", "b", [0.4, 0.3], [1.0, 2.0]),
    ]:
        run = make_run(runs / name, name.split("_")[1], 0, losses, task=task)
        test = pd.read_csv(run / "test.csv").assign(seconds=seconds)
        test.to_csv(run / "test.csv", index=False)
    build_report([runs], tmp_path / "out")
    scores = pd.read_csv(tmp_path / "out" / "performance_profiles.csv").set_index("label")
    # steps: adam reaches both targets at step 10, sgd at 20 and 10; seconds: sgd is faster on both
    assert scores.loc["adam", "score"] == pytest.approx(1.0)
    assert scores.loc["sgd", "score_seconds"] == pytest.approx(1.0)
    # adam's seconds are 2.5x and 3x sgd's: rho is 0 below 2.5, 1/2 to 3, then 1; area 1.25 of 3
    assert scores.loc["adam", "score_seconds"] == pytest.approx(1.25 / 3, abs=0.01)
    assert (tmp_path / "out" / "performance_profile_seconds.png").exists()
    assert "seconds to target" in (tmp_path / "out" / "summary.md").read_text()
