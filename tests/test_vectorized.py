"""The vectorised launcher: members of a wide model equal their single runs bit for bit (threads=1),
diverge and stop alone, keep their rows when interrupted; jobs that cannot join run alone."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import assert_same_metrics, make_cfg
from test_cli import cli

from optbench.job.job import run_job
from optbench.optim.build import build_optimizer
from optbench.sweeps.vectorized import batched
from optbench.sweeps.vectorized.batched import batch_signature
from optbench.sweeps.vectorized.engine import run_group
from optbench.sweeps.vectorized.grouping import plan_groups, solo_reason

# batch_size=1000: 60 steps per epoch, so 150 steps cross two epoch boundaries (two draws each) and
# interleave them with three test passes (one draw each): every member must replay its own stream.
BUDGET = ["iterations=150", "eval_every=40", "batch_size=1000", "threads=1", "device=cpu"]
# The fast tier's: one epoch boundary (step 61), after two test passes' draws and before a third.
SHORT_BUDGET = ["iterations=70", "eval_every=25", "batch_size=1000", "threads=1", "device=cpu"]


def vectorized_sweep(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    """`optbench -m hydra/launcher=vectorized overrides...` into tmp_path/sweep, without the automatic report."""
    sweep = ["auto_report=false", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    return cli("-m", "hydra/launcher=vectorized", *overrides, *sweep, cwd=tmp_path)


def compare_with_single_runs(tmp_path: Path, members: list[list[str]], budget: list[str] = BUDGET) -> list[dict]:
    """Run `members` as one group and each alone; assert identical CSVs; return the group's summaries."""
    cfgs = [make_cfg(*member, *budget) for member in members]
    summaries = run_group(cfgs, [tmp_path / f"member{i}" for i in range(len(cfgs))])
    for i, cfg in enumerate(cfgs):
        alone = run_job(cfg, tmp_path / f"alone{i}")
        assert summaries[i]["status"] == alone["status"], members[i]
        for name in (
            "train.csv",
            "test.csv",
            *(["valid.csv"] if (tmp_path / f"alone{i}" / "valid.csv").exists() else []),
        ):
            assert_same_metrics(
                tmp_path / f"member{i}" / name, tmp_path / f"alone{i}" / name, f"{' '.join(members[i])}: {name}"
            )
        assert summaries[i]["final_test_accuracy"] == alone["final_test_accuracy"]
    return summaries


@pytest.mark.slow  # the fast tier keeps the members-equal-single-runs test below (without a validation split)
def test_members_with_a_validation_split_equal_their_single_runs(tmp_path):
    """The tuner's default (validation=true): members train on the same 50,000 images and write valid.csv."""
    summaries = compare_with_single_runs(
        tmp_path, [["optimizer=sgd", "validation=true"], ["optimizer=adam", "seed=1", "validation=true"]]
    )
    assert all(s["vectorized_members"] == 2 for s in summaries)
    assert all((tmp_path / f"member{i}" / "valid.csv").exists() for i in range(2))


def test_members_equal_their_single_runs_and_a_diverging_member_stops_alone(tmp_path):
    members = [
        ["optimizer=sgd", "optimizer.weight_decay=0", "record_grad_norm=true"],  # batched SGD block (an int setting)
        ["optimizer=sgd", "optimizer.lr=0.05", "seed=1", "grad_clip=0.3"],  # ... with per-member lr, seed, clipping
        ["optimizer=sgd", "optimizer.lr=3000"],  # diverges early
        ["optimizer=scratch/adam", "seed=3", "schedule=cosine", "grad_clip=0.2"],  # the per-member path, a schedule
    ]
    summaries = compare_with_single_runs(tmp_path, members, SHORT_BUDGET)
    norms = [pd.read_csv(tmp_path / f"member{i}" / "train.csv").get("grad_norm") for i in range(4)]
    assert norms[2] is None and (norms[1] > 0.3).any() and (norms[3] > 0.2).any()  # measured before clipping
    assert [s["status"] for s in summaries] == ["completed", "completed", "diverged", "completed"]
    assert summaries[2]["iterations_run"] < 40
    assert all(s["vectorized_members"] == len(members) for s in summaries)


ELEMENTWISE_TORCH = [
    "sgd",
    "momentum",
    "nesterov",
    "adam",
    "adamw",
    "adamax",
    "nadam",
    "radam",
    "rmsprop",
    "adagrad",
    "adadelta",
    "asgd",
    "rprop",
]
SCRATCH = [
    f"scratch/{name}"
    for name in (
        "sgd",
        "momentum",
        "nesterov",
        "adam",
        "adamw",
        "adamax",
        "nadam",
        "radam",
        "rmsprop",
        "adagrad",
        "adadelta",
    )
]


@pytest.mark.slow
def test_every_elementwise_torch_and_scratch_optimizer_matches_its_single_run(tmp_path):
    members = [[f"optimizer={name}", f"seed={i % 3}"] for i, name in enumerate(ELEMENTWISE_TORCH + SCRATCH)]
    members += [
        ["optimizer=sgd", "optimizer.lr=0.2", "optimizer.weight_decay=0.001"],
        ["optimizer=momentum", "optimizer.dampening=0.1", "optimizer.weight_decay=0.001", "seed=4"],
        ["optimizer=nesterov", "optimizer.momentum=0.8", "schedule=warmup_cosine"],
        ["optimizer=adam", "optimizer.betas=[0.8,0.99]", "optimizer.eps=1e-6", "optimizer.weight_decay=0.01"],
        ["optimizer=adamw", "optimizer.lr=0.002", "optimizer.weight_decay=0.1", "schedule=step"],
        ["optimizer=adam", "lookahead.enabled=true", "seed=5"],
        ["optimizer=rmsprop", "optimizer.lr=0.003", "schedule=linear"],
        ["optimizer=rmsprop", "optimizer.momentum=0.9", "optimizer.lr=0.001", "optimizer.weight_decay=0.001"],
        ["optimizer=adagrad", "optimizer.lr_decay=0.001", "optimizer.initial_accumulator_value=0.1", "seed=6"],
        ["optimizer=adam", "optimizer.lr=0.003", "seed=2"],
        ["optimizer=adam", "schedule=cosine"],
        ["optimizer=rmsprop", "optimizer.lr=0.001", "optimizer.weight_decay=0"],
        ["optimizer=adamax", "optimizer.lr=0.004", "optimizer.betas=[0.8,0.99]", "optimizer.eps=1e-6"],
        ["optimizer=adamax", "optimizer.weight_decay=0.001", "seed=7"],
    ]
    summaries = compare_with_single_runs(tmp_path, members)
    assert all(s["status"] == "completed" for s in summaries)


def test_interrupt_keeps_every_members_finished_steps(tmp_path, monkeypatch):
    calls = {"n": 0}
    real_step = batched.BatchedSGD.step

    def step_then_interrupt(self):
        calls["n"] += 1
        if calls["n"] == 50:
            raise KeyboardInterrupt
        real_step(self)

    monkeypatch.setattr(batched.BatchedSGD, "step", step_then_interrupt)
    cfgs = [make_cfg("optimizer=sgd", f"seed={seed}", *BUDGET) for seed in (0, 1)]
    summaries = run_group(cfgs, [tmp_path / "a", tmp_path / "b"])
    assert [s["status"] for s in summaries] == ["interrupted", "interrupted"]
    for name in ("a", "b"):
        train = pd.read_csv(tmp_path / name / "train.csv")
        assert list(train.iteration) == list(range(1, 50))  # step 50 was cut off half-way
        assert len(pd.read_csv(tmp_path / name / "test.csv")) == 1  # the evaluation at 40


def test_the_benchmarks_optimizers_step_in_batched_blocks():
    model = torch.nn.Linear(2, 1)
    for name in ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad", "adamax"):
        optimizer = build_optimizer(make_cfg(f"optimizer={name}").optimizer, model, name)
        assert batch_signature(optimizer)[0] in batched.BATCHED, name
    assert batch_signature(build_optimizer(make_cfg("optimizer=nadam").optimizer, model, "nadam")) is None


def test_grouping_reasons_and_member_bound():
    cfgs = [
        make_cfg("optimizer=sgd", "seed=0"),
        make_cfg("optimizer=adam", "seed=1"),
        make_cfg("optimizer=sgd", "schedule=cosine"),
        make_cfg("optimizer=lbfgs"),
        make_cfg("optimizer=muon"),
        make_cfg("task=rosenbrock"),
        make_cfg("task=fmnist_2c2d"),
        make_cfg("optimizer=sgd", "batch_size=50"),
    ]
    groups, alone = plan_groups(cfgs, max_members=2)
    assert groups == [[0, 1], [2]]
    assert "step(closure)" in alone[3] and "Newton-Schulz" in alone[4]
    assert "not a minibatch classification task" in alone[5] and "not an MLP" in alone[6]
    assert "no other job" in alone[7]
    assert solo_reason(make_cfg("optimizer=adam")) is None


@pytest.mark.slow
def test_vectorized_launcher_writes_every_jobs_files(tmp_path):
    sweep = tmp_path / "sweep"
    result = vectorized_sweep(tmp_path, "optimizer=sgd,adam,lbfgs", "iterations=30", "eval_every=15", "device=cpu")
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr  # Hydra's own lines go to stdout, the jobs' to stderr
    assert "Launching 3 jobs: 2 in 1 vectorised group(s), 1 alone" in output
    assert "runs alone: optimizer=lbfgs: it re-evaluates the loss inside step(closure)" in output
    for job, optimizer in enumerate(("sgd", "adam", "lbfgs")):
        summary = json.loads((sweep / str(job) / "summary.json").read_text())
        assert (summary["optimizer"], summary["status"], summary["iterations_run"]) == (optimizer, "completed", 30)
        assert (sweep / str(job) / ".hydra" / "overrides.yaml").read_text().count(f"optimizer={optimizer}") == 1
        assert "iteration 30:" in (sweep / str(job) / "optbench.log").read_text()
        assert len(pd.read_csv(sweep / str(job) / "test.csv")) == 2
    assert json.loads((sweep / "0" / "summary.json").read_text())["vectorized_members"] == 2


@pytest.mark.slow
def test_groups_in_processes_of_their_own_equal_their_single_runs(tmp_path):
    """`hydra.launcher.processes=2`: two groups train at once, each in a spawned process (what a box with two
    GPUs does by default, GPU p for process p); every member still equals its single run bit for bit."""
    sweep, budget = tmp_path / "sweep", ["iterations=40", "eval_every=20", "threads=1", "device=cpu"]
    result = vectorized_sweep(
        tmp_path, "hydra.launcher.processes=2", "optimizer=sgd,adam", "batch_size=50,100", *budget
    )
    assert result.returncode == 0, result.stderr
    assert "Launching 4 jobs: 4 in 2 vectorised group(s) over 2 processes, 0 alone" in result.stdout + result.stderr
    for job, (optimizer, batch_size) in enumerate([(o, b) for o in ("sgd", "adam") for b in (50, 100)]):
        alone = run_job(make_cfg(f"optimizer={optimizer}", f"batch_size={batch_size}", *budget), tmp_path / f"a{job}")
        member = json.loads((sweep / str(job) / "summary.json").read_text())
        assert (member["vectorized_members"], member["device"], member["threads"]) == (2, "cpu", 1)
        assert member["final_test_accuracy"] == alone["final_test_accuracy"]
        for name in ("train.csv", "test.csv"):
            assert_same_metrics(sweep / str(job) / name, tmp_path / f"a{job}" / name, f"job {job}: {name}")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("hydra.launcher.max_members=0", "hydra.launcher.max_members=0 must be a whole number >= 1"),
        ("hydra.launcher.processes=0", "hydra.launcher.processes=0 must be a positive whole number"),
    ],
)
def test_bad_launcher_setting_is_one_message(tmp_path, setting, message):
    result = vectorized_sweep(tmp_path, setting, "optimizer=sgd,adam", "iterations=5")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
