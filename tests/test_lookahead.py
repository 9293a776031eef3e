"""Lookahead: a hand-computed trajectory, the k=1/alpha=1 identity, state round-trips, the CLI option."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import run

from optbench.optim import Lookahead


def quadratic_steps(optimizer, w: torch.nn.Parameter, steps: int) -> list[float]:
    """Minimise w²/2 (gradient w) and record w after each step."""
    path = []
    for _ in range(steps):
        optimizer.zero_grad()
        (0.5 * w**2).sum().backward()
        optimizer.step()
        path.append(w.detach().tolist())
    return path


def test_hand_computed_trajectory():
    # SGD lr=0.1 on w²/2 multiplies w by 0.9 each step. k=2, alpha=0.5, from w=1:
    #   fast 0.9, 0.81 -> slow 1 + 0.5(0.81 - 1) = 0.905, w = 0.905
    #   fast 0.8145, 0.73305 -> slow 0.905 + 0.5(0.73305 - 0.905) = 0.819025, w = 0.819025
    w = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    lookahead = Lookahead(torch.optim.SGD([w], lr=0.1), k=2, alpha=0.5)
    assert [p[0] for p in quadratic_steps(lookahead, w, 4)] == pytest.approx([0.9, 0.905, 0.8145, 0.819025], abs=1e-12)
    assert lookahead.slow[0][0].item() == pytest.approx(0.819025, abs=1e-12)


def test_k1_alpha1_equals_the_base_optimizer():
    w1 = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    w2 = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    plain = quadratic_steps(torch.optim.Adam([w1], lr=0.1), w1, 20)
    wrapped = quadratic_steps(Lookahead(torch.optim.Adam([w2], lr=0.1), k=1, alpha=1.0), w2, 20)
    assert wrapped == plain


def test_state_dict_round_trip_continues_the_same_trajectory():
    def fresh():
        w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        return w, Lookahead(torch.optim.Adam([w], lr=0.1), k=3, alpha=0.5)

    w, opt = fresh()
    quadratic_steps(opt, w, 4)  # stop between two synchronisations
    saved_w, saved_state = w.detach().clone(), copy.deepcopy(opt.state_dict())  # as torch.save would
    expected = quadratic_steps(opt, w, 5)

    w2, opt2 = fresh()
    with torch.no_grad():
        w2.copy_(saved_w)
    opt2.load_state_dict(saved_state)
    assert quadratic_steps(opt2, w2, 5) == expected
    assert opt2.fast_steps == 9


@pytest.mark.parametrize("k,alpha", [(0, 0.5), (5, 0.0), (5, 1.5)])
def test_bad_settings_rejected(k, alpha):
    w = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(ValueError, match="Lookahead"):
        Lookahead(torch.optim.SGD([w], lr=0.1), k=k, alpha=alpha)


def test_lookahead_from_the_config(tmp_path):
    summary = run(
        tmp_path / "la",
        "optimizer=adam",
        "optimizer.lr=0.01",
        "lookahead.enabled=true",
        "iterations=60",
        "eval_every=30",
    )
    plain = run(tmp_path / "plain", "optimizer=adam", "optimizer.lr=0.01", "iterations=60", "eval_every=30")
    assert summary["status"] == "completed"
    assert summary["final_train_loss"] != plain["final_train_loss"]  # the wrapper really acts
    assert summary["config_fingerprint"] != plain["config_fingerprint"]
    k1 = run(
        tmp_path / "k1",
        "optimizer=adam",
        "optimizer.lr=0.01",
        "lookahead.enabled=true",
        "lookahead.k=1",
        "lookahead.alpha=1.0",
        "iterations=60",
        "eval_every=30",
    )
    assert k1["final_train_loss"] == plain["final_train_loss"]
