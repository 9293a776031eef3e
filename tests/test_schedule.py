"""The schedule group: each schedule's lr sequence, with every optimizer kind, and its errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_cfg, run

from optbench.errors import OptbenchError
from optbench.optim import Lookahead
from optbench.optim.schedule import build_schedule

N, LR = 60, 0.1


def cosine(i: np.ndarray, total: int, start: float, end: float = 0.0) -> np.ndarray:
    """The closed form of cosine annealing at 0-based step i."""
    return end + (start - end) * (1 + np.cos(np.pi * i / total)) / 2


def expected(schedule: str) -> np.ndarray:
    """The lr of steps 1..N, written from each schedule's definition (not from torch)."""
    i = np.arange(N)  # steps before this one
    if schedule == "constant":
        return np.full(N, LR)
    if schedule == "step":  # step_size 0.33 of 60 = 20 steps, gamma 0.1
        return LR * 0.1 ** (i // 20)
    if schedule == "cosine":
        return cosine(i, N, LR)
    if schedule == "linear":
        return LR * (1 - i / N)
    warm = 3  # warmup 0.05 of 60
    ramp = LR * (0.01 + 0.99 * i / warm)
    if schedule == "warmup_cosine":
        return np.where(i < warm, ramp, cosine(i - warm, N - warm, LR))
    decay = 12  # wsd: decay 0.2 of 60
    return np.where(i < warm, ramp, np.where(i < N - decay, LR, LR * (1 - (i - (N - decay)) / decay)))


SCHEDULES = ["constant", "step", "cosine", "warmup_cosine", "wsd", "linear"]


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_lr_column_follows_the_schedule(tmp_path, schedule):
    summary = run(tmp_path, "optimizer=momentum", f"schedule={schedule}", f"iterations={N}", "eval_every=30")
    train = pd.read_csv(tmp_path / "train.csv")
    assert summary["status"] == "completed" and summary["schedule"] == schedule
    assert train.lr.to_numpy() == pytest.approx(expected(schedule), rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("schedule", SCHEDULES[1:])
def test_schedules_are_torchs_own(schedule):
    """Each schedule is torch's scheduler pieces: the lr sequence equals stepping them by hand."""

    def sequence(make) -> list[float]:
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
        scheduler = make(optimizer)
        lrs = []
        for _ in range(N):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return lrs

    ours = sequence(lambda opt: build_schedule(make_cfg(f"schedule={schedule}").schedule, opt, N, schedule))
    S = torch.optim.lr_scheduler
    theirs = {
        "step": lambda o: S.StepLR(o, 20, 0.1),
        "cosine": lambda o: S.CosineAnnealingLR(o, N),
        "linear": lambda o: S.LinearLR(o, 1.0, 0.0, N),
        "warmup_cosine": lambda o: S.SequentialLR(o, [S.LinearLR(o, 0.01, 1.0, 3), S.CosineAnnealingLR(o, N - 3)], [3]),
        "wsd": lambda o: S.SequentialLR(
            o, [S.LinearLR(o, 0.01, 1.0, 3), S.ConstantLR(o, 1.0, N - 15), S.LinearLR(o, 1.0, 0.0, 12)], [3, N - 12]
        ),
    }[schedule]
    assert ours == sequence(theirs)


def test_constant_builds_no_scheduler():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    assert build_schedule(make_cfg().schedule, optimizer, N, "constant") is None  # the default: numbers unchanged


def test_schedule_with_lookahead_sets_the_base_lr(tmp_path):
    summary = run(
        tmp_path, "optimizer=adam", "lookahead.enabled=true", "schedule=cosine", f"iterations={N}", "eval_every=30"
    )
    train = pd.read_csv(tmp_path / "train.csv")
    assert summary["status"] == "completed"
    assert train.lr.to_numpy() == pytest.approx(cosine(np.arange(N), N, 1e-3), rel=1e-9, abs=1e-15)
    weight = torch.nn.Parameter(torch.zeros(1))
    base = torch.optim.SGD([weight], lr=LR)
    wrapped = Lookahead(base, k=2)
    scheduler = build_schedule(make_cfg("schedule=linear").schedule, wrapped, 10, "linear")
    weight.grad = torch.ones(1)
    wrapped.step()
    scheduler.step()
    assert base.param_groups[0]["lr"] == pytest.approx(LR * 0.9)


def test_schedule_with_a_scratch_optimizer(tmp_path):
    run(tmp_path, "optimizer=scratch/adam", "schedule=linear", f"iterations={N}", "eval_every=30")
    train = pd.read_csv(tmp_path / "train.csv")
    assert train.lr.to_numpy() == pytest.approx(1e-3 * (1 - np.arange(N) / N), rel=1e-9, abs=1e-15)
    assert math.isfinite(train.loss.iloc[-1])


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            ["schedule=warmup_cosine", "schedule.warmup=100"],
            "schedule.warmup=100 is 100 steps, not shorter than the whole run",
        ),
        (["schedule=wsd", "schedule.warmup=0.5", "schedule.decay=0.5"], "leave no stable phase"),
        (["schedule=step", "schedule.gamma=0"], "schedule.gamma=0 must be a factor in (0, 1]"),
        (
            ["schedule=cosine", "schedule.min_factor=2"],
            "schedule.min_factor=2 must be a fraction of the optimizer's lr",
        ),
        (["schedule=wsd", "schedule.decay=-1"], "schedule.decay=-1 must be a positive number of steps"),
        (["schedule=linear", "+schedule.nosuch=1"], "schedule=linear could not be built"),
    ],
)
def test_bad_schedule_settings_are_one_clear_message(tmp_path, overrides, message):
    with pytest.raises(OptbenchError) as error:
        run(tmp_path, *overrides, f"iterations={N}", "eval_every=30")
    assert message in str(error.value)
