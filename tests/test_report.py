"""`optbench report`: runs found, labelled and grouped; every table number checked against the CSVs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from test_cli import OPTBENCH, cli

SHORT = ["iterations=60", "eval_every=20", "device=cpu"]
FIGURES = ["train_loss", "train_accuracy", "test_accuracy", "final_accuracy"]


@pytest.fixture(scope="module")
def seed_sweep(tmp_path_factory) -> Path:
    """A real multirun: 2 optimizers x 2 seeds, with its automatic report."""
    sweep = tmp_path_factory.mktemp("sweep")
    result = cli("-m", "optimizer=sgd,adam", "seed=0,1", *SHORT, f"hydra.sweep.dir={sweep}", cwd=sweep)
    assert result.returncode == 0, result.stderr
    return sweep


@pytest.fixture(scope="module")
def lr_sweep(tmp_path_factory) -> Path:
    """A sweep over learning rates, one of which diverges."""
    sweep = tmp_path_factory.mktemp("lr")
    result = cli(
        "-m",
        "optimizer=sgd",
        "optimizer.lr=0.1,1e30",
        *SHORT,
        f"hydra.sweep.dir={sweep}",
        "auto_report=false",
        cwd=sweep,
    )
    assert result.returncode == 0, result.stderr
    return sweep


def report(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return cli("report", *args, cwd=cwd)


def runs_under(path: Path) -> list[Path]:
    return sorted(p.parent for p in path.rglob("train.csv"))


def config_of(run: Path) -> tuple[str, int]:
    summary = json.loads((run / "summary.json").read_text())
    return summary["optimizer"], summary["seed"]


@pytest.mark.slow
def test_auto_report_after_multirun(seed_sweep):
    out = seed_sweep / "report"
    expected = {f"{name}.png" for name in [*FIGURES, "pairwise"]} | {
        "summary.csv",
        "summary.md",
        "results.csv",
        "pairwise.csv",
    }
    assert expected <= {p.name for p in out.iterdir()}


@pytest.mark.slow
def test_seed_groups_match_the_csvs(seed_sweep, tmp_path):
    result = report(str(seed_sweep), "-o", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "summary.csv").set_index("label")
    assert sorted(table.index) == ["adam", "sgd"] and table.n.tolist() == [2, 2]
    for optimizer in ("sgd", "adam"):
        runs = [r for r in runs_under(seed_sweep) if config_of(r)[0] == optimizer]
        tests = [pd.read_csv(r / "test.csv") for r in runs]
        trains = [pd.read_csv(r / "train.csv") for r in runs]
        finals = [100 * t.accuracy.iloc[-1] for t in tests]
        row = table.loc[optimizer]
        assert row.final_test_acc == pytest.approx(np.mean(finals), abs=1e-9)
        assert row.final_test_acc_std == pytest.approx(np.std(finals, ddof=1), abs=1e-9)
        assert row.best_test_acc == pytest.approx(np.mean([100 * t.accuracy.max() for t in tests]), abs=1e-9)
        assert row.final_train_loss == pytest.approx(np.mean([t.loss.tail(50).mean() for t in trains]), rel=1e-9)
        assert row.seeds in ("0 1", "1 0")
        assert row.status == "completed"
        assert row.task == "mnist_mlp" and row.target == "test_accuracy >= 0.97"
        firsts = [t.iteration[t.accuracy >= 0.97].min() for t in tests]
        # the median over seeds, a seed that never reached the target counting as infinite
        assert row.iters_to_target == np.median([np.inf if pd.isna(f) else f for f in firsts])
    # sorted by final test accuracy, best first
    ordered = pd.read_csv(tmp_path / "summary.csv")
    assert ordered.final_test_acc.is_monotonic_decreasing
    # the markdown and the terminal show mean ± std and n
    markdown = (tmp_path / "summary.md").read_text()
    assert "±" in markdown and "| n " in markdown.replace("|   n", "| n")
    assert "adam" in result.stdout and "sgd" in result.stdout


@pytest.mark.slow
def test_single_run_and_default_output_dir(seed_sweep, tmp_path):
    run = shutil.copytree(runs_under(seed_sweep)[0], tmp_path / "run")
    result = report(str(run), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(run / "report" / "summary.csv")
    test = pd.read_csv(run / "test.csv")
    assert len(table) == 1 and table.n[0] == 1
    assert table.final_test_acc[0] == pytest.approx(100 * test.accuracy.iloc[-1], abs=1e-9)


@pytest.mark.slow
def test_several_dirs_labelled_by_what_differs(seed_sweep, lr_sweep, tmp_path):
    result = report(
        str(lr_sweep),
        *map(str, runs_under(seed_sweep)[:1]),
        "-o",
        str(tmp_path / "cmp"),
        "--format",
        "svg",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    labels = set(pd.read_csv(tmp_path / "cmp" / "summary.csv").label)
    assert {"sgd lr=0.1", "sgd lr=1e+30"} <= labels
    assert all((tmp_path / "cmp" / f"{name}.svg").exists() for name in FIGURES)


@pytest.mark.slow
def test_diverged_run_is_listed_not_dropped(lr_sweep, tmp_path):
    result = report(str(lr_sweep), "-o", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "summary.csv").set_index("label")
    assert table.loc["sgd lr=1e+30", "status"] == "diverged"
    assert table.loc["sgd lr=0.1", "status"] == "completed"
    markdown = (tmp_path / "summary.md").read_text()
    assert "diverged at iteration" in markdown and "is not finite" in markdown
    assert "diverged" in result.stdout


@pytest.mark.slow
def test_truncated_csv_keeps_complete_rows(seed_sweep, tmp_path):
    run = shutil.copytree(runs_under(seed_sweep)[0], tmp_path / "run")
    text = (run / "train.csv").read_text()
    cut = text.index("\n41,") + 8  # in the middle of iteration 41's row, as a kill -9 would leave it
    (run / "train.csv").write_text(text[:cut])
    result = report(str(run), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert table.status[0] == "damaged" and table.iterations_run[0] == 40
    assert "train.csv damaged" in result.stdout


@pytest.mark.slow
def test_unreadable_summary_is_reported(seed_sweep, tmp_path):
    run = shutil.copytree(runs_under(seed_sweep)[0], tmp_path / "run")
    (run / "summary.json").write_text("{not json")
    result = report(str(run), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert pd.read_csv(tmp_path / "out" / "summary.csv").status[0] == "unreadable"


@pytest.mark.slow
def test_damaged_hydra_config_is_reported(seed_sweep, tmp_path):
    run = shutil.copytree(runs_under(seed_sweep)[0], tmp_path / "run")
    (run / ".hydra" / "config.yaml").write_text("dataset: [unclosed\n  : :")
    result = report(str(run), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert ".hydra unreadable" in result.stdout
    assert pd.read_csv(tmp_path / "out" / "summary.csv").status[0] == "damaged"


@pytest.mark.slow
@pytest.mark.parametrize("setup", ["empty", "unrelated", "missing"])
def test_nothing_to_report_is_a_clear_error(tmp_path, setup):
    target = tmp_path / "target"
    if setup != "missing":
        target.mkdir()
    if setup == "unrelated":
        (target / "notes.txt").write_text("hello")
        (target / "data.csv").write_text("a,b\n1,2\n")
    result = report(str(target), cwd=tmp_path)
    assert result.returncode == 2
    assert "optbench report: error:" in result.stderr and "Traceback" not in result.stderr
    assert str(target) in result.stderr


@pytest.mark.slow
def test_auto_report_can_be_switched_off(lr_sweep):
    assert not (lr_sweep / "report").exists()


@pytest.mark.slow
def test_report_help(tmp_path):
    result = report("--help", cwd=tmp_path)
    assert result.returncode == 0 and "--format" in result.stdout and "--window" in result.stdout
    assert OPTBENCH.exists()


def make_run(
    path: Path,
    optimizer: str,
    seed: int,
    test_losses: list[float],
    task: str = "toy",
    target: dict | None = None,
    batch_size: int | None = None,
) -> Path:
    """A run dir written by hand: a function-kind task whose target is on the test loss (trained with
    `batch_size`, an override of the run, when given)."""
    target = target or {"metric": "test_loss", "threshold": 0.5, "mode": "min"}
    batch = {"batch_size": batch_size} if batch_size else {}
    (path / ".hydra").mkdir(parents=True)
    iterations = 10 * len(test_losses)
    pd.DataFrame(
        {"iteration": range(1, iterations + 1), "loss": np.linspace(2, 1, iterations), "accuracy": [None] * iterations}
    ).to_csv(path / "train.csv", index=False)
    pd.DataFrame(
        {
            "iteration": [10 * (i + 1) for i in range(len(test_losses))],
            "loss": test_losses,
            "accuracy": [None] * len(test_losses),
        }
    ).to_csv(path / "test.csv", index=False)
    (path / "summary.json").write_text(
        json.dumps(
            {
                "status": "completed",
                "task": task,
                "kind": "function",
                "target": target,
                "optimizer": optimizer,
                "seed": seed,
                **batch,
            }
        )
    )
    (path / ".hydra" / "config.yaml").write_text(
        yaml.safe_dump({"task": {"name": task, "target": target}, "optimizer": {"lr": 0.1}, "seed": seed, **batch})
    )
    (path / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump([f"optimizer={optimizer}", f"seed={seed}", *(f"{k}={v}" for k, v in batch.items())])
    )
    (path / ".hydra" / "hydra.yaml").write_text(
        yaml.safe_dump({"hydra": {"runtime": {"choices": {"optimizer": optimizer}}}})
    )
    return path


@pytest.mark.slow
def test_time_to_target_and_order_follow_each_tasks_target(tmp_path):
    runs = tmp_path / "runs"
    make_run(runs / "a", "adam", 0, [1.0, 0.4, 0.45])  # reaches at 20, final 0.45
    make_run(runs / "b", "sgd", 0, [0.9, 0.6, 0.55])  # never reaches
    make_run(runs / "c0", "momentum", 0, [0.3, 0.2, 0.1])  # reaches at 10
    make_run(runs / "c1", "momentum", 1, [0.7, 0.6, 0.4])  # reaches at 30
    make_run(runs / "d0", "rmsprop", 0, [0.45, 0.3, 0.2])  # reaches at 10
    make_run(runs / "d1", "rmsprop", 1, [0.9, 0.8, 0.8])  # never: half the group missed, median infinite
    for seed, losses in enumerate([[0.6, 0.5, 0.9], [0.6, 0.6, 0.3], [0.9, 0.9, 0.9]]):  # 20, 30, never
        make_run(runs / f"e{seed}", "nesterov", seed, losses)
    result = report(str(runs), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "out" / "summary.csv")
    # best final test loss first: momentum 0.25, adam 0.45, rmsprop 0.5, sgd 0.55, nesterov 0.7
    assert table.label.tolist() == ["momentum", "adam", "rmsprop", "sgd", "nesterov"]
    rows = table.set_index("label")
    assert rows.loc["momentum", "iters_to_target"] == 20 and rows.loc["momentum", "reached_target"] == 1.0
    assert rows.loc["adam", "iters_to_target"] == 20 and rows.loc["adam", "reached_target"] == 1.0
    assert rows.loc["rmsprop", "iters_to_target"] == np.inf and rows.loc["rmsprop", "reached_target"] == 0.5
    assert rows.loc["sgd", "iters_to_target"] == np.inf and rows.loc["sgd", "reached_target"] == 0.0
    assert rows.loc["nesterov", "iters_to_target"] == 30
    assert rows.loc["nesterov", "reached_target"] == pytest.approx(2 / 3)
    markdown = (tmp_path / "out" / "summary.md").read_text()
    assert "∞ (missed)" in markdown and "2/3" in markdown
    assert (rows.target == "test_loss <= 0.5").all()
    assert rows.loc["momentum", "final_test_loss"] == pytest.approx(0.25)
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"train_loss.png", "test_loss.png"} <= names and "test_accuracy.png" not in names
    results = pd.read_csv(tmp_path / "out" / "results.csv")  # tidy: one row per run and evaluation
    assert list(results.columns) == [
        "task",
        "group",
        "run",
        "seed",
        "status",
        "optimizer",
        "iteration",
        "test_loss",
        "test_accuracy",
    ]
    assert len(results) == 9 * 3 and set(results.optimizer) == {"adam", "sgd", "momentum", "rmsprop", "nesterov"}
    c1 = results[(results.optimizer == "momentum") & (results.seed == 1)]
    assert c1.iteration.tolist() == [10, 20, 30] and c1.test_loss.tolist() == [0.7, 0.6, 0.4]
    assert "1/2" in (tmp_path / "out" / "summary.md").read_text()  # rmsprop: reached by 1 of 2 seeds


@pytest.mark.slow
def test_an_accuracy_target_sorts_by_final_accuracy_and_a_loss_target_by_final_loss(tmp_path):
    runs = tmp_path / "runs"
    accuracy = {"metric": "test_accuracy", "threshold": 0.9, "mode": "max"}
    for name, accuracies in (("low", [0.5, 0.8]), ("high", [0.85, 0.95])):
        run = make_run(runs / name, name, 0, [1.0, 0.5], task="cls", target=accuracy)
        test = pd.read_csv(run / "test.csv").assign(accuracy=accuracies)
        test.to_csv(run / "test.csv", index=False)
        train = pd.read_csv(run / "train.csv").assign(accuracy=0.5)
        train.to_csv(run / "train.csv", index=False)
    make_run(runs / "worse", "worse", 0, [0.9, 0.8])
    make_run(runs / "better", "better", 0, [0.9, 0.1])
    result = report(str(runs), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "out" / "summary.csv")
    # tasks in the order their first run was found (run dirs sort by name: better, high, low, worse)
    assert list(zip(table.task, table.label)) == [("toy", "better"), ("toy", "worse"), ("cls", "high"), ("cls", "low")]
    assert table.set_index("label").loc["high", "iters_to_target"] == 20
    for task, figure in (("cls", "test_accuracy.png"), ("toy", "test_loss.png")):  # a folder of figures per task
        assert (tmp_path / "out" / task / figure).exists()


@pytest.fixture(scope="module")
def two_d_sweep(tmp_path_factory) -> Path:
    """A real sweep over two 2-D tasks and two optimizers, one of which diverges on rosenbrock."""
    sweep = tmp_path_factory.mktemp("twod")
    result = cli(
        "-m",
        "task=rosenbrock,beale",
        "optimizer=sgd,adam",
        "optimizer.lr=0.01",
        "iterations=60",
        "eval_every=20",
        f"hydra.sweep.dir={sweep}",
        cwd=sweep,
    )
    assert result.returncode == 0, result.stderr
    return sweep


@pytest.mark.slow
def test_two_d_sweep_report_draws_every_path(two_d_sweep):
    out = two_d_sweep / "report"
    for task in ("rosenbrock", "beale"):
        names = {p.name for p in (out / task).iterdir()}
        assert {"trajectory.png", "train_loss.png", "test_loss.png"} <= names
        assert not names & {"test_accuracy.png", "train_accuracy.png", "final_accuracy.png"}
    table = pd.read_csv(out / "summary.csv")
    assert sorted(table.task.unique()) == ["beale", "rosenbrock"] and len(table) == 4
    statuses = table.set_index(["task", "label"]).status
    assert statuses["rosenbrock", "sgd"] == "diverged" and statuses["beale", "adam"] == "completed"
    markdown = (out / "summary.md").read_text()
    assert "## rosenbrock" in markdown and "(rosenbrock/trajectory.png)" in markdown


@pytest.mark.slow
def test_gif_of_the_paths(two_d_sweep, tmp_path):
    from PIL import Image

    result = report(str(two_d_sweep), "-o", str(tmp_path), "--gif", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    gif = Image.open(tmp_path / "beale" / "trajectory.gif")
    assert gif.n_frames > 20  # the paths grow step by step


def test_summary_statistics(tmp_path):
    import scipy.stats

    from optbench.reporting.groups import group_runs
    from optbench.reporting.stats import summarize
    from optbench.reporting.table import summary_table
    from optbench.rundir.reader import load_run

    values = np.array([97.1, 97.3, 96.9])
    summary = summarize([*values, None, float("nan")])  # missing values are left out
    assert (summary.n, summary.mean, summary.median) == (3, pytest.approx(values.mean()), pytest.approx(97.1))
    assert summary.std == pytest.approx(values.std(ddof=1))
    interval = scipy.stats.bootstrap(
        (values,), np.mean, confidence_level=0.95, n_resamples=2000, method="percentile", rng=np.random.default_rng(0)
    ).confidence_interval
    assert (summary.ci_low, summary.ci_high) == (interval.low, interval.high)
    # on a larger sample the percentile interval is close to the normal one: mean ± 1.96 s / sqrt(n)
    sample = np.random.default_rng(1).normal(10.0, 2.0, 200)
    wide = summarize(list(sample))
    half = 1.96 * sample.std(ddof=1) / np.sqrt(len(sample))
    assert wide.ci_low == pytest.approx(sample.mean() - half, abs=0.15 * half)
    assert wide.ci_high == pytest.approx(sample.mean() + half, abs=0.15 * half)
    one = summarize([0.5])
    assert one.std == 0 and np.isnan(one.ci_low) and summarize([]).n == 0

    runs = tmp_path / "runs"
    make_run(runs / "c0", "momentum", 0, [0.3, 0.2, 0.1])
    make_run(runs / "c1", "momentum", 1, [0.7, 0.6, 0.4])
    table = summary_table(group_runs([load_run(runs / "c0"), load_run(runs / "c1")]), window=5)
    row = table.iloc[0]
    assert row.final_test_loss == pytest.approx(0.25) and row.final_test_loss_median == pytest.approx(0.25)
    assert 0.1 <= row.final_test_loss_ci_low <= 0.25 <= row.final_test_loss_ci_high <= 0.4


def test_holm_and_paired_comparisons_against_scipy(tmp_path):
    import scipy.stats

    from optbench.reporting.groups import group_runs
    from optbench.reporting.stats import detectable_difference, holm, paired_t, seeds_needed
    from optbench.reporting.table import pairwise_table
    from optbench.rundir.reader import load_run

    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])  # 3 x 0.01, then max(2 x 0.03, 1 x 0.04)
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    a, b = {0: 0.91, 1: 0.93, 2: 0.92, 3: 0.95}, {0: 0.90, 1: 0.90, 2: 0.915, 4: 0.5}  # seed 3/4: not common
    result = paired_t("a", "b", a, b, higher_is_better=True)
    assert result.n == 3 and result.advantage == pytest.approx((0.01 + 0.03 + 0.005) / 3)
    assert result.p == pytest.approx(scipy.stats.ttest_rel([0.91, 0.93, 0.92], [0.90, 0.90, 0.915]).pvalue)
    assert paired_t("a", "b", a, b, higher_is_better=False).advantage == pytest.approx(-result.advantage)
    assert np.isnan(paired_t("a", "b", {0: 1.0, 1: 2.0}, {0: 0.5, 1: 1.5}, True).p)  # constant difference
    assert np.isnan(paired_t("a", "b", {0: 1.0}, {0: 0.5}, True).p)  # one common seed

    runs = tmp_path / "runs"
    losses = {"adam": [0.30, 0.35, 0.32], "sgd": [0.50, 0.56, 0.51], "momentum": [0.31, 0.36, 0.30]}
    for name, finals in losses.items():
        for seed, final in enumerate(finals):
            make_run(runs / f"{name}{seed}", name, seed, [1.0, final])
    pairs = pairwise_table(group_runs([load_run(p) for p in sorted(runs.iterdir())]))
    assert len(pairs) == 3 and set(pairs.metric) == {"test_loss"} and (pairs.common_seeds == 3).all()
    raw = {(r.first, r.second): r for r in pairs.itertuples()}
    adam_sgd = raw.get(("adam", "sgd")) or raw[("sgd", "adam")]
    expected = scipy.stats.ttest_rel(losses["adam"], losses["sgd"]).pvalue
    assert adam_sgd.p == pytest.approx(expected)
    assert pairs.p_holm.tolist() == pytest.approx(holm(pairs.p.tolist()))
    # lower loss is better: adam's advantage over sgd is positive whichever way round the pair is listed
    assert (adam_sgd.advantage > 0) == (adam_sgd.first == "adam")
    assert pairs.significant.tolist() == [p < 0.05 for p in pairs.p_holm]
    # how sure: what these 3 seeds could detect, and the seeds each observed difference would need
    spread = np.std(np.subtract(losses["adam"], losses["sgd"]), ddof=1)
    assert adam_sgd.detectable == pytest.approx(detectable_difference(spread, 3))
    assert adam_sgd.seeds_needed == seeds_needed(abs(adam_sgd.advantage), spread)


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_expected_best_of_k_trials_is_the_mean_over_every_k_subset(higher_is_better):
    """Tang et al.'s estimator equals brute force: the best of each k-subset of the trials, averaged (ties too)."""
    from itertools import combinations

    from optbench.reporting.stats import expected_best

    values = [0.91, 0.95, 0.88, 0.95, 0.97, 0.90, 0.93]
    best = max if higher_is_better else min
    for k in range(1, len(values) + 1):
        subsets = [best(subset) for subset in combinations(values, k)]
        assert expected_best(values, k, higher_is_better) == pytest.approx(sum(subsets) / len(subsets), rel=1e-12)
    assert expected_best(values, 1, higher_is_better) == pytest.approx(np.mean(values))
    with pytest.raises(ValueError, match="k=8 must be between 1 and the number of trials"):
        expected_best(values, 8)


@pytest.mark.parametrize("n", [3, 5, 10])
def test_a_detectable_difference_is_detected_four_times_in_five(n):
    """Simulated: differences with that mean and spread, over n seeds, are significant in 80% of 20,000 draws."""
    import scipy.stats

    from optbench.reporting.stats import detectable_difference

    spread = 0.02
    delta = detectable_difference(spread, n)
    draws = np.random.default_rng(0).normal(delta, spread, size=(20_000, n))
    rejected = scipy.stats.ttest_1samp(draws, 0.0, axis=1).pvalue < 0.05
    assert rejected.mean() == pytest.approx(0.8, abs=0.01)
    assert np.isnan(detectable_difference(0.0, n)) and np.isnan(detectable_difference(spread, 1))


def test_seeds_needed_is_where_the_observed_difference_turns_significant():
    import scipy.stats

    from optbench.reporting.stats import seeds_needed

    difference, spread = 0.01, 0.02
    n = seeds_needed(difference, spread)

    def t(seeds):
        return difference * np.sqrt(seeds) / spread

    assert t(n) >= scipy.stats.t.ppf(0.975, n - 1)  # significant at n seeds
    assert t(n - 1) < scipy.stats.t.ppf(0.975, n - 2)  # not at one fewer
    assert seeds_needed(-difference, spread) == n and seeds_needed(0.0, spread) is None
    assert seeds_needed(1e-9, spread, most=1000) is None  # beyond the search: never at these seeds


@pytest.mark.slow
def test_many_groups_draw_and_compare_the_best_and_table_all(tmp_path):
    """A tuned sweep's hundreds of (optimizer, lr) groups: the figures draw the best TOP_GROUPS (legends stay
    readable), the paired tests compare them (not G^2/2 pairs), and the tables keep every group."""
    from optbench.reporting.groups import TOP_GROUPS

    lrs = [f"{0.0005 * 1.4**i:.4g}" for i in range(TOP_GROUPS + 3)]
    sweep = tmp_path / "sweep"
    result = cli(
        "-m",
        "task=rosenbrock",
        "optimizer=adam",
        f"optimizer.lr={','.join(lrs)}",
        "seed=0,1",
        "iterations=6",
        "eval_every=3",
        "auto_report=false",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = tmp_path / "report"
    assert report(str(sweep), "-o", str(out), cwd=tmp_path).returncode == 0
    table = pd.read_csv(out / "summary.csv")
    assert len(table) == len(lrs) and (table.n == 2).all()
    best = table.label.tolist()[:TOP_GROUPS]  # the table is best first
    pairs = pd.read_csv(out / "pairwise.csv")
    assert len(pairs) == TOP_GROUPS * (TOP_GROUPS - 1) // 2 and set(pairs["first"]) | set(pairs["second"]) == set(best)
    spec = json.loads((out / "test_loss.plotly.json").read_text())
    legend = [trace["name"] for trace in spec["data"] if trace.get("showlegend")]
    assert [name.split(" (n=")[0] for name in legend if name != "target"] == best
    assert (
        f"{len(lrs)} groups: the figures draw, and the paired t-tests compare, the best {TOP_GROUPS}"
        in (out / "summary.md").read_text()
    )
    assert len(pd.read_csv(out / "results.csv").run.unique()) == 2 * len(lrs)
