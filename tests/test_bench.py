"""`optbench bench`: suites, the protocol run task by task, stored baselines, leaderboard.csv and verdicts.csv."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from optbench.bench.cli import listing
from optbench.bench.suite import check_bench_arguments, differing, identity, load_suite, shipped_suite, suite_names
from optbench.bench.verdict import (
    LEADERBOARD_COLUMNS,
    VERDICT_COLUMNS,
    Entry,
    _judge,
    verdict_rows,
)
from optbench.errors import OptbenchError
from optbench.rundir.reader import Run

TINY = "hydra.sweeper.suite.tasks.quadratic_deep"
# quadratic_deep alone, 2 trials, 2 seeds, 3 epochs: the whole protocol in seconds.
TINY_BENCH = (
    "hydra.sweeper.tasks=[quadratic_deep]",
    f"{TINY}.trials=2",
    f"{TINY}.seeds=2",
    f"{TINY}.overrides=['task=quadratic_deep','epochs=3']",
)


def bench(tmp_path: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    """`optbench bench ARGS` into tmp_path/name, in a child process (as a user runs it)."""
    return subprocess.run(
        [sys.executable, "-m", "optbench", "bench", *args, f"hydra.sweep.dir={tmp_path / name}", "progress=false"],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_shipped_suites_fix_a_protocol_for_each_task():
    """cpu (the default), deepobs and gpu ship; cpu has the four workloads the issue names, each with its search
    space, trials, tuning seed, seeds, selection rule and split; --list describes them."""
    assert {"cpu", "deepobs", "gpu"} <= set(suite_names())
    cpu = shipped_suite("cpu")
    assert [t.name for t in cpu.tasks] == ["mnist_mlp", "quadratic_deep", "algoperf_mnist", "shakespeare_char"]
    for task in cpu.tasks:
        assert task.search in ("random", "halton")  # independent draws: each trial a sample of one attempt
        assert task.split == "validation" and task.seed_list() == [0, 1, 2, 3, 4] and task.params
    deepobs = shipped_suite("deepobs")
    assert all(t.split == "test" and t.trials == 36 and t.seed_list() == list(range(42, 52)) for t in deepobs.tasks)
    text = listing()
    assert "suite=cpu (default)" in text and "algoperf_mnist" in text and "baselines:" in text


@pytest.mark.parametrize(
    ("node", "words"),
    [
        ({"name": "mine", "tasks": {"a": {"overrides": ["task=rosenbrock"], "trails": 3}}}, "unknown keys ['trails']"),
        ({"name": "mine", "tasks": {"a": {"overrides": "task=rosenbrock"}}}, "must be a list"),
        ({"name": "mine", "tasks": {}}, "has no tasks"),
        (None, "give suite=NAME"),
    ],
)
def test_a_bad_suite_is_one_clear_error(node, words):
    with pytest.raises(OptbenchError, match=words.replace("[", r"\[").replace("]", r"\]")):
        load_suite(node)


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        (["iterations=10"], "needs the optimizer"),
        (["optimizer=adam", "task=mnist_mlp"], "cannot be given"),
        (["optimizer=adam", "seed=3"], "cannot be given"),
        (["optimizer=adam", "optimizer.lr=0.1,0.01"], "only optimizer=a,b"),
    ],
)
def test_bench_arguments_leave_tasks_and_seeds_to_the_suite(arguments, words):
    with pytest.raises(OptbenchError, match=words):
        check_bench_arguments(arguments, "cpu")
    check_bench_arguments(
        ["optimizer=adam,lion", "optimizer.betas=[0.9,0.95]", "hydra.sweeper.tasks=[a,b]", "+hydra.sweeper.x=[1,2]"],
        "cpu",
    )


def test_an_unknown_suite_is_one_message_and_exit_status_2(tmp_path, capsys):
    from optbench.bench.cli import main

    assert main(["optimizer=adam", "suite=laptop", f"hydra.sweep.dir={tmp_path / 'x'}"]) == 2
    said = capsys.readouterr().err
    assert "suite='laptop' is not a suite optbench knows: use one of cpu, deepobs, gpu" in said
    assert "Traceback" not in said and not (tmp_path / "x").exists()


def test_storing_a_folder_that_is_no_bench_is_one_message(tmp_path, capsys):
    from optbench.bench.cli import main

    assert main([f"--store-baseline={tmp_path}"]) == 2
    assert f"{tmp_path} is not a bench's sweep dir" in capsys.readouterr().err
    assert main([f"--compare={tmp_path}"]) == 2
    assert f"{tmp_path} is not a bench's sweep dir" in capsys.readouterr().err


def test_identity_names_every_key_that_differs():
    """Two runs compare only when the task config and protocol match; `differing` names what does not."""
    config = OmegaConf.create(
        {"task": {"name": "q", "dim": 100}, "dataset": {"root": "/a"}, "iterations": 5, "optimizer": {"lr": 1}}
    )
    other = OmegaConf.create(
        {"task": {"name": "q", "dim": 50}, "dataset": {"root": "/b"}, "iterations": 5, "optimizer": {"lr": 2}}
    )
    mine, theirs = identity(config, {"trials": 8}), identity(other, {"trials": 4})
    assert differing(mine, theirs) == ["protocol.trials", "task.dim"]  # not the data's folder, not the optimizer
    assert differing(mine, identity(config, {"trials": 8})) == []


def entry(optimizer: str, finals: dict[int, float], source: str = "this run", metric: str = "test_accuracy") -> Entry:
    """An entry whose runs ended at `finals` (seed -> final test value)."""
    mode = "max" if metric == "test_accuracy" else "min"
    column = metric.removeprefix("test_")
    runs = [
        Run(
            Path(f"/{optimizer}/{seed}"),
            "completed",
            pd.DataFrame(),
            pd.DataFrame({"iteration": [10], "loss": [value], "accuracy": [value], "seconds": [1.0]})[
                ["iteration", column]
            ],
            {"seed": seed, "target": {"metric": metric, "threshold": 0.5, "mode": mode}},
        )
        for seed, value in finals.items()
    ]
    return Entry("t", optimizer, source, runs, pd.DataFrame())


def test_verdicts_follow_the_targets_direction_with_holm_over_every_row():
    """A higher accuracy is better, a lower loss is better; p is the paired t-test's and p_holm Holm's over the
    whole file; identical runs give no p and `no significant difference`."""
    seeds = range(5)
    new_acc = entry("mine", {s: 0.90 + 0.01 * s + 0.002 * (s % 2) for s in seeds})
    base_acc = entry("adamw", {s: 0.85 + 0.01 * s for s in seeds}, "shipped")
    new_loss = entry("mine", {s: 2.0 + 0.1 * s + 0.003 * (s % 2) for s in seeds}, metric="test_loss")
    base_loss = entry("adamw", {s: 1.9 + 0.1 * s for s in seeds}, "shipped", metric="test_loss")
    same = entry("mine", {s: 0.5 + 0.01 * s for s in seeds})
    rows = _judge(verdict_rows([new_acc], [base_acc]) + verdict_rows([new_loss], [base_loss]))
    rows += _judge(verdict_rows([same], [entry("adamw", {s: 0.5 + 0.01 * s for s in seeds}, "shipped")]))
    rows += _judge(verdict_rows([entry("mine", {})], [base_acc]))  # every seed of the new one diverged
    rows += _judge(verdict_rows([new_acc], [entry("muon", {}, "shipped")]))  # the baseline completed no run
    frame = pd.DataFrame(rows, columns=VERDICT_COLUMNS)
    assert list(frame.verdict) == ["better", "worse", "no significant difference", "worse", "better"]
    assert frame.difference.iloc[0] == pytest.approx(0.0508) and frame.difference.iloc[1] == pytest.approx(0.1012)
    assert frame.p_holm.iloc[0] == pytest.approx(
        min(1, 2 * min(frame.p.iloc[:2])) if frame.p.iloc[0] < frame.p.iloc[1] else frame.p.iloc[0]
    )
    assert frame.ci_low.iloc[0] < frame.difference.iloc[0] < frame.ci_high.iloc[0]
    assert frame.difference.iloc[2] == 0 and math.isnan(frame.p.iloc[2]) and math.isnan(frame.p_holm.iloc[2])


def test_seconds_compare_only_on_the_same_device_model_threads_and_grouping():
    """docs/bench.md's rule for `seconds_to_target`: the same CPU or GPU model, the same threads, the same grouping."""
    from optbench.bench.verdict import _same_machine

    def on(**machine) -> Entry:
        made = entry("adamw", {0: 0.9})
        made.runs[0].summary.update({"device": "cpu", "device_name": "AMD EPYC", "threads": 1, **machine})
        return made

    assert _same_machine(on(), on())
    assert not _same_machine(on(), on(threads=2))
    assert not _same_machine(on(), on(device_name="Intel Xeon"))
    assert not _same_machine(on(), on(vectorized_members=5))


def test_a_baseline_made_with_another_torch_is_compared_and_said_so():
    """Optimizers change between releases: a baseline from another torch version is noted beside the verdict."""
    from optbench.bench.verdict import _version_notes

    mine, theirs = entry("mine", {0: 0.9}), entry("adamw", {0: 0.8}, "shipped")
    for run in mine.runs:
        run.summary["torch_version"] = "2.15.0"
    for run in theirs.runs:
        run.summary["torch_version"] = "2.14.1"
    assert _version_notes([mine], [theirs]) == [
        "the adamw baseline ran torch 2.14.1, this run torch 2.15.0: differences may come from torch as well as from "
        "the optimizers"
    ]
    for run in theirs.runs:
        run.summary["torch_version"] = "2.15.0"
    assert _version_notes([mine], [theirs]) == []


@pytest.mark.slow
def test_bench_runs_the_protocol_stores_a_baseline_and_compares_with_it(tmp_path):
    """Bench adam on a tiny protocol and store it as a baseline; bench sgd against it: leaderboard.csv and
    verdicts.csv have the contract's columns and the report opens with the verdict. A changed protocol compares
    nothing and says which key differs; a damaged baseline is left out with a message, the bench goes on."""
    store = tmp_path / "baselines"
    first = bench(tmp_path, "adam", "--as-baseline", f"--baselines-dir={store}", "optimizer=adam", *TINY_BENCH)
    assert first.returncode == 0, first.stderr[-3000:]
    folder = store / "cpu" / "adam"
    provenance = json.loads((folder / "provenance.json").read_text())
    for key in ("optbench_version", "commit", "torch_version", "libraries", "device", "device_name", "date", "command"):
        assert provenance[key], key
    assert provenance["libraries"] == {"torch": metadata.version("torch")}
    assert provenance["tasks"]["quadratic_deep"]["protocol"]["trials"] == 2
    assert provenance["command"].startswith("optbench bench suite=cpu optimizer=adam")
    stored = sorted(p.name for p in (folder / "quadratic_deep").iterdir())
    assert stored == ["0", "1", "tuning.csv"]
    assert len(pd.read_csv(folder / "quadratic_deep" / "0" / "train.csv")) <= 101  # thinned from 21 steps x 3
    trials = pd.read_csv(folder / "quadratic_deep" / "tuning.csv")
    assert len(trials) == 2 and {"optimizer.lr", "status", "final_metric", "time_to_target"} <= set(trials.columns)

    second = bench(tmp_path, "sgd", f"--baselines-dir={store}", "optimizer=sgd", *TINY_BENCH)
    assert second.returncode == 0, second.stderr[-3000:]
    board = pd.read_csv(tmp_path / "sgd" / "leaderboard.csv")
    verdicts = pd.read_csv(tmp_path / "sgd" / "verdicts.csv")
    assert tuple(board.columns) == LEADERBOARD_COLUMNS and tuple(verdicts.columns) == VERDICT_COLUMNS
    assert list(board.optimizer) == ["sgd", "adam"] and board.source.iloc[0] == "this run"
    assert board.source.iloc[1] == provenance["id"] and board.setting.iloc[0].startswith("optimizer.lr=")
    assert board.seeds.iloc[0] == "0 1" and board.metric.iloc[0] == "test_loss"
    assert len(verdicts) == 1 and verdicts.verdict.iloc[0] in ("better", "worse", "no significant difference")
    assert verdicts.task.iloc[0] == "quadratic_deep" and verdicts.baseline.iloc[0].startswith("adam (")
    summary = (tmp_path / "sgd" / "report" / "summary.md").read_text()
    assert summary.index("## Verdict") < summary.index("## Leaderboard") < summary.index("quadratic_deep ·")

    changed = bench(tmp_path, "changed", f"--baselines-dir={store}", "optimizer=sgd", *TINY_BENCH, f"{TINY}.trials=3")
    assert changed.returncode == 0, changed.stderr[-3000:]
    said = changed.stdout + changed.stderr  # the sweeper logs through Hydra's logger (stdout), jobs on stderr
    assert "not compared with the adam baseline" in said and "differs in protocol.trials" in said
    assert pd.read_csv(tmp_path / "changed" / "verdicts.csv").empty
    assert "differs in protocol.trials" in (tmp_path / "changed" / "report" / "summary.md").read_text()

    again = subprocess.run(
        [sys.executable, "-m", "optbench", "bench", f"--compare={tmp_path / 'sgd'}", f"--baselines-dir={store}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "sgd" / "verdicts.csv"), verdicts)
    assert "**sgd** against the shipped baselines" in (tmp_path / "sgd" / "report" / "summary.md").read_text()

    (folder / "quadratic_deep" / "1" / "summary.json").write_text('{"status": "compl')  # a damaged file
    torn = bench(tmp_path, "torn", f"--baselines-dir={store}", "optimizer=sgd", *TINY_BENCH)
    assert torn.returncode == 0, torn.stderr[-3000:]
    assert "is unreadable (summary.json unreadable): its seed is left out" in torn.stdout + torn.stderr
    assert pd.read_csv(tmp_path / "torn" / "leaderboard.csv").seeds.tolist() == ["0 1", "0"]

    (folder / "provenance.json").write_text("{not json")
    damaged = bench(tmp_path, "damaged", f"--baselines-dir={store}", "optimizer=sgd", *TINY_BENCH)
    assert damaged.returncode == 0, damaged.stderr[-3000:]
    said = damaged.stdout + damaged.stderr
    assert "is missing or damaged" in said and "regenerate it" in said
    assert (tmp_path / "damaged" / "leaderboard.csv").exists()


@pytest.mark.slow
def test_a_task_that_fails_leaves_the_others_running(tmp_path):
    """Two optimizers at once; a suite task whose jobs all fail (a setting the task refuses) is named in the log
    and keeps a row saying so; the other task's runs and tables are written."""
    broken = "+hydra.sweeper.suite.tasks.broken={overrides:['task=rosenbrock','task.noise=-1'],trials:1,seeds:1}"
    result = bench(
        tmp_path,
        "b",
        "optimizer=adam,sgd",
        "hydra.sweeper.baselines=false",
        *TINY_BENCH[1:],
        "hydra.sweeper.tasks=[quadratic_deep,broken]",
        broken,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    said = result.stdout + result.stderr
    assert "tune: no trial of optimizer=adam completed" in said and "task.noise=-1" in said
    board = pd.read_csv(tmp_path / "b" / "leaderboard.csv")
    assert list(zip(board.task, board.optimizer)) == [
        ("quadratic_deep", "adam"),
        ("quadratic_deep", "sgd"),
        ("broken", "adam"),
        ("broken", "sgd"),
    ]
    assert board.seeds.iloc[0] == board.seeds.iloc[1] == "0 1"
    assert board.setting.iloc[2].startswith("no trial completed") and pd.isna(board["mean"].iloc[2])


def test_an_optimizers_trials_are_its_arm_alone():
    """optimizer=adam,adamw benched together: adam's trials are not adamw's (whose name starts like it)."""
    from optbench.bench.baselines import arm_trials

    tuning = pd.DataFrame({"arm": ["optimizer=adam", "optimizer=adamw", "optimizer=adamw"], "trial": [0, 1, 2]})
    assert arm_trials(tuning, "adam").trial.tolist() == [0]
    assert arm_trials(tuning, "adamw").trial.tolist() == [1, 2]
    assert arm_trials(tuning.iloc[:1].assign(arm="default"), "adam").trial.tolist() == [0]  # one unnamed arm


def test_importing_a_folder_that_is_not_deepobs_baselines_is_one_message(tmp_path):
    from optbench.bench.deepobs_baselines import convert

    with pytest.raises(OptbenchError, match="is not laid out as fsschneider/DeepOBS_Baselines publishes it"):
        convert(tmp_path, "0" * 40, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("provenance.json"))


@pytest.mark.slow  # reads every shipped baseline's runs
def test_deepobs_published_runs_ship_as_the_deepobs_suites_baselines():
    """DeepOBS_Baselines' SGD, Momentum and Adam runs, converted: 36 learning rates on seed 42 with DeepOBS's own
    choice (which optbench's selection rule agrees with), that rate's ten seeds whose final test losses are the
    run files' own numbers, and a task config identical to what `optbench bench suite=deepobs` runs."""
    from test_deepobs import DEEPOBS_FINAL_TEST_LOSS

    from optbench.bench.baselines import load_baselines
    from optbench.bench.verdict import baseline_entries
    from optbench.config.compose import compose

    baselines, problems = load_baselines("deepobs")
    assert not problems and sorted(b.optimizer for b in baselines) == [
        "deepobs/adam",
        "deepobs/momentum",
        "deepobs/sgd",
    ]
    suite = shipped_suite("deepobs")
    chosen = {"deepobs/sgd": 0.015848931925, "deepobs/momentum": 0.0025118864315, "deepobs/adam": 0.039810717055}
    for task in suite.tasks:
        entries = {e.optimizer: e for e in baseline_entries(baselines, task)}
        assert set(entries) == set(chosen)
        for optimizer, entry in entries.items():
            assert len(entry.tuning) == 36 and entry.tuning.chosen.sum() == 1
            assert entry.tuning["rank"][entry.tuning.chosen].item() == 1  # optbench's rule picks DeepOBS's choice
            assert sorted(entry.finals()) == list(range(42, 52)) and all(run.clean for run in entry.runs)
            job = compose(f"task={task.name}", f"optimizer={optimizer}", "seed=42", "+suite=deepobs")
            assert differing(entry.identity, identity(job, task.protocol())) == []
            if task.name == "quadratic_deep":
                assert entry.tuning["optimizer.lr"][entry.tuning.chosen].item() == chosen[optimizer]
                assert [entry.finals()[s] for s in range(42, 52)] == DEEPOBS_FINAL_TEST_LOSS[optimizer]


@pytest.mark.slow  # reads every shipped baseline's runs
def test_the_leaderboard_page_is_generated_from_the_shipped_baselines():
    """docs/leaderboard.md is `python -m optbench.bench.leaderboard`'s output for the files optbench ships."""
    from optbench.bench.leaderboard import markdown

    page = Path(__file__).resolve().parents[1] / "docs" / "leaderboard.md"
    assert page.read_text() == markdown(), "docs/leaderboard.md is stale: python -m optbench.bench.leaderboard > it"


@pytest.mark.slow
def test_bench_takes_your_own_optimizer_and_resumes(tmp_path):
    """An optimizer from a --config-dir is benched like a shipped one; `resume=true` into the same folder reruns
    nothing and writes the same tables."""
    conf = tmp_path / "myconf" / "optimizer"
    conf.mkdir(parents=True)
    (conf / "mysgd.yaml").write_text("_target_: torch.optim.SGD\n_partial_: true\nlr: 0.01\nmomentum: 0.5\n")
    args = ("--config-dir", str(tmp_path / "myconf"), "optimizer=mysgd", "hydra.sweeper.baselines=false", *TINY_BENCH)
    first = bench(tmp_path, "mine", *args)
    assert first.returncode == 0, first.stderr[-3000:]
    board = pd.read_csv(tmp_path / "mine" / "leaderboard.csv")
    assert list(board.optimizer) == ["mysgd"] and board.seeds.iloc[0] == "0 1"
    again = bench(tmp_path, "mine", *args, "resume=true")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("already holds a completed run of this config; skipping it") == 4  # 2 trials, 2 seeds
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "mine" / "leaderboard.csv"), board)


@pytest.mark.parametrize("suite", ["cpu", *(pytest.param(s, marks=pytest.mark.slow) for s in ("deepobs", "gpu"))])
def test_every_task_of_a_shipped_suite_composes_and_passes_the_checks(suite):
    """Each task's overrides make a valid job config, with the validation split where the protocol selects on it."""
    from optbench.config.compose import compose
    from optbench.config.validation import check_config

    for task in shipped_suite(suite).tasks:
        cfg = compose(*task.overrides, f"+suite={suite}", "optimizer=adam", f"validation={task.split == 'validation'}")
        assert cfg.task.name == task.name
        check_config(cfg)
