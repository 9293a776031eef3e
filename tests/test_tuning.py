"""The tune sweeper: search spaces, trial ranking, and a real two-stage sweep checked against its files."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import qmc

from optbench.config.validation import check_sweeper
from optbench.errors import OptbenchError
from optbench.sweeps.tuning import TrialScore, parse_dimension, rank_trials, search_points

OPTBENCH = Path(sys.executable).with_name("optbench")


def tune(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(OPTBENCH), "-m", "hydra/sweeper=tune", "progress=false", *args, f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_default_log_grid_is_half_decades_from_1e_5_to_1():
    points = search_points([parse_dimension("optimizer.lr", "tag(log, interval(1e-5, 1))")], "grid", 11, 0)
    assert [float(p["optimizer.lr"]) for p in points] == pytest.approx(np.logspace(-5, 0, 11), rel=2e-3)
    assert points[0] == {"optimizer.lr": "1e-05"} and points[-1] == {"optimizer.lr": "1"}


def test_grid_crosses_intervals_and_lists():
    dims = [parse_dimension("optimizer.lr", "interval(0.1, 0.3)"), parse_dimension("optimizer.momentum", "0.9,0.99")]
    points = search_points(dims, "grid", 3, 0)
    assert len(points) == 6
    assert {p["optimizer.lr"] for p in points} == {"0.1", "0.2", "0.3"}
    assert {p["optimizer.momentum"] for p in points} == {"0.9", "0.99"}


def test_halton_is_scipys_scrambled_sequence_mapped_to_the_log_interval():
    dims = [
        parse_dimension("optimizer.lr", "tag(log, interval(1e-4, 1e-1))"),
        parse_dimension("optimizer.weight_decay", "interval(0, 0.01)"),
    ]
    points = search_points(dims, "halton", 8, seed=3)
    draws = qmc.Halton(d=2, scramble=True, rng=np.random.default_rng(3)).random(8)
    assert [float(p["optimizer.lr"]) for p in points] == pytest.approx(10 ** (-4 + 3 * draws[:, 0]), rel=5e-3)
    assert [float(p["optimizer.weight_decay"]) for p in points] == pytest.approx(0.01 * draws[:, 1], rel=5e-3, abs=1e-6)
    assert points == search_points(dims, "halton", 8, seed=3)  # reproducible
    assert points != search_points(dims, "halton", 8, seed=4)


def test_random_search_stays_inside_the_interval():
    points = search_points([parse_dimension("optimizer.lr", "tag(log, interval(1e-3, 1e-2))")], "random", 50, 0)
    values = [float(p["optimizer.lr"]) for p in points]
    assert len(values) == 50 and min(values) >= 1e-3 * 0.999 and max(values) <= 1e-2 * 1.001


@pytest.mark.parametrize(
    "spec, words",
    [
        ("tag(log, interval(0, 1))", "low > 0"),
        ("interval(1, 0.5)", "low < high"),
        ("0.1", "not an interval"),
        ("interval(", "does not parse"),
    ],
)
def test_bad_search_dimension_is_one_clear_error(spec, words):
    with pytest.raises(OptbenchError, match="cannot search optimizer.lr") as error:
        parse_dimension("optimizer.lr", spec)
    assert words in str(error.value) and "tag(log,interval(1e-5,1))" in str(error.value)


def test_bad_search_settings_are_clear_errors():
    dims = [parse_dimension("optimizer.lr", "interval(0.1, 0.3)")]
    with pytest.raises(OptbenchError, match="grid, random, halton"):
        check_sweeper({"search": "bayes", "trials": 4, "seeds": 5})
    with pytest.raises(OptbenchError, match="positive whole number"):
        check_sweeper({"search": "grid", "trials": 0, "seeds": 5})
    assert len(search_points(dims, "grid", 4, 0)) == 4


def score(status="completed", final=0.9, best=None, ttt=math.nan, higher=True) -> TrialScore:
    return TrialScore(
        status, "toy", "test_accuracy" if higher else "test_loss", higher, final, final if best is None else best, ttt
    )


def test_time_to_target_ranks_first_then_the_final_metric_breaks_ties():
    scores = [
        score(final=0.95),
        score(final=0.97, ttt=400),
        score(final=0.98, ttt=400),
        score(final=0.99, ttt=500),
        score("diverged", final=0.98, ttt=100),
        score("failed", final=math.nan),
    ]
    assert rank_trials(scores, "time_to_target") == [4, 2, 1, 3, 5, 6]
    assert rank_trials(scores, "final") == [4, 3, 2, 1, 5, 6]


def test_best_and_loss_targets_rank_the_right_way():
    scores = [
        score(final=0.5, best=0.2, higher=False),
        score(final=0.3, best=0.3, higher=False),
        score("incomplete", final=0.1, higher=False),
    ]
    assert rank_trials(scores, "final") == [2, 1, 3]
    assert rank_trials(scores, "best") == [1, 2, 3]
    # equal trials: the earlier one wins
    assert rank_trials([score(final=0.9), score(final=0.9)], "final") == [1, 2]


def recompute_choice(sweep: Path, trials: pd.DataFrame) -> int:
    """The winning trial, recomputed from the trials' own CSVs (of the split selected on): completed
    trials only, the first evaluation meeting the target (missed = infinite), then the final loss, then
    trial order."""
    keys = []
    for trial in trials.itertuples():
        run = sweep / trial.run_dir
        summary = yaml.safe_load((run / "summary.json").read_text())
        test = pd.read_csv(run / ("valid.csv" if trial.split == "validation" else "test.csv"))
        target = summary["target"]
        assert target["metric"] == "test_loss" and target["mode"] == "min"
        hits = test.iteration[test.loss <= target["threshold"]]
        usable = summary["status"] == "completed"
        keys.append(
            (
                not usable,
                hits.min() if usable and len(hits) else math.inf,
                test.loss.iloc[-1] if usable else math.inf,
                trial.trial,
            )
        )
    return min(keys)[-1]


@pytest.mark.slow
def test_tune_sweep_chooses_the_trial_its_csvs_say_and_reruns_it_over_seeds(tmp_path):
    result = tune(
        tmp_path,
        "task=rosenbrock",
        "optimizer=sgd,adam",
        "iterations=200",
        "eval_every=20",
        "hydra.sweeper.trials=4",
        "hydra.sweeper.seeds=2",
    )
    assert result.returncode == 0, result.stderr
    sweep = tmp_path / "sweep"
    trials = pd.read_csv(sweep / "tuning.csv")
    assert len(trials) == 8 and trials.arm.tolist() == ["optimizer=sgd"] * 4 + ["optimizer=adam"] * 4
    assert (trials.seed == 1000).all() and (trials.task == "rosenbrock").all()
    assert trials["optimizer.lr"].tolist() == pytest.approx([1e-5, 4.64e-4, 2.15e-2, 1.0] * 2)
    assert "diverged" in trials.status.tolist()  # sgd at lr=1 blows up on rosenbrock: ranked last, no crash
    for arm, rows in trials.groupby("arm"):
        winner = recompute_choice(sweep, rows)
        assert rows.set_index("trial").loc[winner, "chosen"] and rows.chosen.sum() == 1
        bad, good = rows[rows.status != "completed"], rows[rows.status == "completed"]
        assert bad.empty or bad["rank"].min() > good["rank"].max()
        assert bad.objective.isna().all()
        # stage 2: the chosen lr over seeds 0 and 1, in the sweep's top-level job dirs
        lr = rows.set_index("trial").loc[winner, "optimizer.lr"]
        reruns = [
            yaml.safe_load((d / ".hydra" / "config.yaml").read_text()) for d in sweep.iterdir() if d.name.isdigit()
        ]
        optimizer = arm.split("=")[1]
        mine = [c for c in reruns if c["optimizer"]["_target_"].lower().endswith(optimizer)]
        assert sorted(c["seed"] for c in mine) == [0, 1]
        assert all(c["optimizer"]["lr"] == pytest.approx(lr) for c in mine)
    # the automatic report covers stage 2 (two groups of two seeds) and draws stage 1's sensitivity
    table = pd.read_csv(sweep / "report" / "summary.csv")
    assert sorted(table.optimizer) == ["adam", "sgd"] and table.n.tolist() == [2, 2]
    assert (sweep / "report" / "lr_sensitivity.png").exists()
    assert "Tuned by `time_to_target`" in (sweep / "report" / "summary.md").read_text()


@pytest.mark.parametrize(
    "args, words",
    [
        pytest.param(["seed=1,2"], "seed=... cannot be given to the tune sweeper", marks=pytest.mark.slow),
        pytest.param(["hydra.sweeper.select=fastest"], "is not a criterion", marks=pytest.mark.slow),
        pytest.param(["hydra.sweeper.seeds=0"], "must be a number of seeds", marks=pytest.mark.slow),
        pytest.param(["optimizer=sgd,nosuch"], "Could not find 'optimizer/nosuch'", marks=pytest.mark.slow),
    ],
)
def test_bad_tune_settings_fail_before_any_trial_runs(tmp_path, args, words):
    """Through the command line (exit status 2, no traceback, no trial run); the fast tier checks the refusal in
    process (below) and the CLI's exit status 2 on a single run (test_validation)."""
    result = tune(tmp_path, "task=rosenbrock", *args)
    assert result.returncode != 0 and words in result.stderr
    assert "Traceback" not in result.stderr
    assert not list((tmp_path / "sweep").glob("tuning/*/train.csv"))


def test_a_seed_given_to_the_tune_sweeper_is_refused_before_any_trial():
    from types import SimpleNamespace

    from hydra_plugins.optbench_tune.tune_sweeper import TuneSweeper

    sweeper = TuneSweeper(params={})
    sweeper.hydra_context = SimpleNamespace(config_loader=None)
    with pytest.raises(OptbenchError, match=r"seed=\.\.\. cannot be given to the tune sweeper") as refused:
        sweeper._plan(["task=rosenbrock", "seed=1,2"])
    assert "\n" not in str(refused.value)


def test_the_sweep_arguments_split_into_arms_fixed_settings_and_searched_keys():
    from types import SimpleNamespace

    from hydra_plugins.optbench_tune.tune_sweeper import TuneSweeper

    sweeper = TuneSweeper(params={"optimizer": {"lr": "tag(log, interval(1e-5, 1))"}})  # as a CLI override nests it
    sweeper.hydra_context = SimpleNamespace(config_loader=None)
    arms, common, dims = sweeper._plan(
        ["optimizer=sgd,adam", "schedule=constant,cosine", "task=rosenbrock", "optimizer.momentum=interval(0.8,0.99)"]
    )
    assert arms == [
        ["optimizer=sgd", "schedule=constant"],
        ["optimizer=sgd", "schedule=cosine"],
        ["optimizer=adam", "schedule=constant"],
        ["optimizer=adam", "schedule=cosine"],
    ]
    assert common == ["task=rosenbrock"]
    assert [(d.key, d.log) for d in dims] == [("optimizer.lr", True), ("optimizer.momentum", False)]
    # a searched key given one value is fixed, not searched; a list for it is searched as those values
    _, common, dims = sweeper._plan(["optimizer=sgd", "optimizer.lr=0.01"])
    assert common == ["optimizer=sgd", "optimizer.lr=0.01"] and dims == []
    _, _, dims = sweeper._plan(["optimizer.lr=0.1,0.01"])
    assert dims[0].values == ("0.1", "0.01")
    assert search_points([], "halton", 8, 0) == [{}]  # nothing searched: one trial per arm


def trial_dir(path: Path, test_loss: float, valid_loss: float) -> Path:
    """A finished trial of a loss-target task whose test and validation splits disagree."""
    path.mkdir(parents=True)
    (path / "train.csv").write_text("iteration,loss,accuracy,lr\n1,1.0,,0.1\n")
    (path / "test.csv").write_text(f"iteration,loss,accuracy,seconds\n1,{test_loss},,0.1\n")
    (path / "valid.csv").write_text(f"iteration,loss,accuracy,seconds\n1,{valid_loss},,0.1\n")
    (path / "summary.json").write_text(
        '{"status": "completed", "task": "toy", "target": {"metric": "test_loss", "threshold": 0.5, "mode": "min"}}'
    )
    return path


def test_a_trial_is_scored_on_the_split_asked_for(tmp_path):
    from optbench.sweeps.tuning import score_trial

    a, b = trial_dir(tmp_path / "a", test_loss=0.2, valid_loss=0.9), trial_dir(tmp_path / "b", 0.8, 0.3)
    on_valid = [score_trial(d, "validation") for d in (a, b)]
    on_test = [score_trial(d, "test") for d in (a, b)]
    assert rank_trials(on_valid, "final") == [2, 1] and rank_trials(on_test, "final") == [1, 2]
    assert on_valid[1].time_to_target == 1.0 and math.isnan(on_valid[0].time_to_target)
    with pytest.raises(OptbenchError, match="is not a split to select on"):
        check_sweeper({"split": "train", "seeds": 5})


@pytest.mark.slow
def test_tune_selects_on_the_validation_split_and_reports_the_test_split(tmp_path):
    result = tune(
        tmp_path,
        "task=quadratic_deep",
        "optimizer=sgd",
        "epochs=3",
        "hydra.sweeper.select=final",
        "hydra.sweeper.trials=4",
        "hydra.sweeper.seeds=2",
        "optimizer.lr=tag(log,interval(1e-3,1e-1))",
    )
    assert result.returncode == 0, result.stderr
    sweep = tmp_path / "sweep"
    trials = pd.read_csv(sweep / "tuning.csv")
    assert (trials.split == "validation").all() and len(trials) == 4
    assert all((sweep / t.run_dir / "valid.csv").exists() for t in trials.itertuples())  # diverged ones too
    finals = {
        t.trial: pd.read_csv(sweep / t.run_dir / "valid.csv").loss.iloc[-1]
        for t in trials.itertuples()
        if t.status == "completed"
    }  # lr 0.1 may diverge before its first evaluation
    assert len(finals) >= 3
    assert trials.set_index("trial").chosen[min(finals, key=finals.get)]  # the argmin, recomputed from valid.csv
    assert trials.set_index("trial").final_metric[list(finals)].tolist() == pytest.approx(list(finals.values()))
    reruns = [d for d in sweep.iterdir() if d.name.isdigit()]
    assert len(reruns) == 2 and all((d / "valid.csv").exists() and (d / "test.csv").exists() for d in reruns)
    summary_md = (sweep / "report" / "summary.md").read_text()
    assert "Tuned by `final` of the validation loss" in summary_md
    # the tuning budget: one random trial gives the mean of the completed ones, all of them the best (a loss: min)
    one, every = np.mean(list(finals.values())), min(finals.values())
    assert f"expected best after 1 trial {one:.4g}, after {len(finals)}: {every:.4g}" in summary_md
    assert "decades of lr" in summary_md  # lr alone was searched: how wide its good region is
    table = pd.read_csv(sweep / "report" / "summary.csv")  # the report's numbers are the test split's
    test_finals = [pd.read_csv(d / "test.csv").loss.iloc[-1] for d in reruns]
    assert table.final_test_loss.iloc[0] == pytest.approx(np.mean(test_finals))


@pytest.mark.slow
def test_deepobs_protocol_tries_deepobs_learning_rates(tmp_path):
    result = subprocess.run(
        [
            str(OPTBENCH),
            "-m",
            "hydra/sweeper=deepobs",
            "task=quadratic_deep",
            "optimizer=deepobs/sgd",
            "epochs=1",
            "hydra.sweeper.seeds=[42,43]",
            "progress=false",
            "auto_report=false",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    trials = pd.read_csv(tmp_path / "sweep" / "tuning.csv", dtype={"optimizer.lr": str})
    # DeepOBS_Baselines' folder names: lr__1.e-05, lr__1.5848931925e-05, ..., lr__1.e+02
    assert len(trials) == 36 and (trials.split == "test").all() and (trials.seed == 42).all()
    assert trials["optimizer.lr"].iloc[:3].tolist() == ["1e-05", "1.5848931925e-05", "2.5118864315e-05"]
    assert trials["optimizer.lr"].iloc[-1] == "100"
    chosen = trials[trials.chosen].iloc[0]
    assert chosen.final_metric == trials[trials.status == "completed"].final_metric.min()  # best final test loss


def test_an_arm_is_named_by_its_optimizer_even_when_only_one_is_tuned():
    from hydra_plugins.optbench_tune.tune_sweeper import arm_name

    assert arm_name([], ["task=shakespeare_char", "optimizer=adamw"]) == "optimizer=adamw"
    assert arm_name(["optimizer=sgd", "schedule=cosine"], ["task=x"]) == "optimizer=sgd schedule=cosine"
    assert arm_name(["batch_size=8"], ["optimizer=sgd"]) == "optimizer=sgd batch_size=8"
    assert arm_name([], ["task=x"]) == "default"


def test_a_report_over_several_sweeps_keeps_their_arms_apart(tmp_path):
    from optbench.reporting.sensitivity import load_tuning

    for sweep, lr in (("first", 0.1), ("second", 0.01)):
        (tmp_path / sweep).mkdir()
        pd.DataFrame(
            {
                "task": ["t"],
                "arm": ["default"],
                "trial": [0],
                "optimizer.lr": [lr],
                "seed": [1000],
                "status": ["completed"],
                "metric": ["test_loss"],
                "final_metric": [1.0],
                "chosen": [True],
            }
        ).to_csv(tmp_path / sweep / "tuning.csv", index=False)
    assert sorted(load_tuning([tmp_path]).arm) == ["default (first)", "default (second)"]
    assert load_tuning([tmp_path / "first"]).arm.tolist() == ["default"]


def sweep_to(tmp_path: Path, name: str, *args: str) -> pd.DataFrame:
    """Run a tune sweep into tmp_path/name; its tuning.csv."""
    out = tmp_path / name
    result = subprocess.run(
        [
            str(OPTBENCH),
            "-m",
            "hydra/sweeper=tune",
            "progress=false",
            "auto_report=false",
            "device=cpu",
            *args,
            f"hydra.sweep.dir={out}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return pd.read_csv(out / "tuning.csv")


@pytest.mark.slow
def test_tpe_search_beats_the_median_grid_point_and_repeats(tmp_path):
    """search=tpe (Optuna) with the grid's trial budget: its best trial beats the grid's median trial,
    and the same seed asks the same points again."""
    pytest.importorskip("optuna")
    common = [
        "task=rosenbrock",
        "optimizer=adam",
        "iterations=150",
        "eval_every=50",
        "hydra.sweeper.trials=12",
        "hydra.sweeper.seeds=1",
        "hydra.sweeper.select=final",
        "hydra.sweeper.batch=3",
    ]
    grid = sweep_to(tmp_path, "grid", *common)
    tpe = sweep_to(tmp_path, "tpe", *common, "hydra.sweeper.search=tpe")
    again = sweep_to(tmp_path, "again", *common, "hydra.sweeper.search=tpe")
    assert len(tpe) == len(grid) == 12
    assert tpe.final_metric.min() < grid.final_metric.median()
    assert tpe["optimizer.lr"].tolist() == again["optimizer.lr"].tolist()
    assert tpe.final_metric.tolist() == again.final_metric.tolist()
    assert tpe.chosen.sum() == 1 and set(tpe["optimizer.lr"]) - set(grid["optimizer.lr"])  # not the grid's points


@pytest.mark.slow
def test_stage_one_is_one_launch_across_arms(tmp_path):
    """With the vectorised launcher, every arm's stage-1 trials train in one group (a grid: all at once;
    tpe: one round of asked points per launch), and stage 2 in another."""
    pytest.importorskip("optuna")
    base = [
        "task=mnist_mlp",
        "optimizer=sgd,adam",
        "iterations=20",
        "eval_every=10",
        "hydra/launcher=vectorized",
        "hydra.sweeper.trials=3",
        "hydra.sweeper.seeds=2",
    ]
    for search, stage_one_group in (("grid", 6), ("tpe", 2)):  # tpe: ceil(3 / 4) = 1 point per arm per round
        trials = sweep_to(tmp_path, search, *base, f"hydra.sweeper.search={search}")
        sweep = tmp_path / search
        members = [
            json.loads((sweep / run_dir / "summary.json").read_text())["vectorized_members"]
            for run_dir in trials.run_dir
        ]
        assert members == [stage_one_group] * 6, search
        reruns = [json.loads((d / "summary.json").read_text()) for d in sweep.iterdir() if d.name.isdigit()]
        assert len(reruns) == 4 and {r["vectorized_members"] for r in reruns} == {4}


def test_an_unknown_search_names_the_choices():
    with pytest.raises(OptbenchError, match="tpe, cmaes, gp"):
        check_sweeper({"search": "bayes", "trials": 4, "seeds": 5})


def _stage_one(metric: str, finals: list[float], **searched: list[float]) -> pd.DataFrame:
    """tuning.csv's rows for one arm: one trial per lr (a NaN final: it diverged)."""
    lrs = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    return pd.DataFrame(
        {
            "task": "t",
            "arm": "optimizer=sgd",
            "trial": range(len(lrs)),
            "seed": 0,
            "status": ["diverged" if np.isnan(f) else "completed" for f in finals],
            "split": "validation",
            "metric": metric,
            "final_metric": finals,
            "chosen": False,
            "optimizer.lr": lrs,
            **searched,
        }
    )


def test_the_lr_width_near_the_best_is_read_from_the_neighbouring_trials():
    from optbench.reporting.sensitivity import lr_width

    accuracy = _stage_one("test_accuracy", [0.90, 0.965, 0.97, 0.962, np.nan])  # best at 1e-2, within 0.01: 1e-3..1e-1
    assert lr_width(accuracy, higher_is_better=True) == pytest.approx(2.0)
    loss = _stage_one("test_loss", [0.5, 0.33, 0.30, 0.34, np.nan])  # within 10% of 0.30: 1e-3 and 1e-2
    assert lr_width(loss, higher_is_better=False) == pytest.approx(1.0)
    gap = _stage_one("test_loss", [0.31, np.nan, 0.30, 0.5, 0.5])  # a diverged neighbour ends the run
    assert lr_width(gap, higher_is_better=False) == pytest.approx(0.0)
    assert lr_width(_stage_one("test_loss", [0.3] * 5, **{"optimizer.momentum": [0.9] * 5}), False) is None
    assert lr_width(_stage_one("test_loss", [0.3, np.nan, np.nan, np.nan, np.nan]), False) is None
