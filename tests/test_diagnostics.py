"""Diagnostics: the Hessian's top eigenvalue (and the preconditioned one) against dense linear algebra."""

from __future__ import annotations

import torch
from torch import nn

from optbench.diagnostics.hessian import hessian_products, preconditioned, top_eigenvalue


def small_problem(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A tanh MLP (Cohen et al.'s fc-tanh, shrunk) with the squared loss on a fixed batch, in float64."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    inputs = torch.randn(20, 6, dtype=torch.float64)
    targets = torch.nn.functional.one_hot(torch.randint(0, 3, (20,)), 3).double()
    return model, inputs, targets


def squared_loss(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cohen et al.'s loss: 0.5 ||f(x) - onehot||^2 summed over classes, averaged over examples."""
    return 0.5 * ((model(inputs) - targets) ** 2).sum() / len(inputs)


def dense_hessian(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The full Hessian in the flattened parameters, from torch.autograd.functional.hessian."""
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss_of(vector: torch.Tensor) -> torch.Tensor:
        params = dict(zip(names, (piece.reshape(shape) for piece, shape in zip(vector.split(sizes), shapes))))
        return squared_loss(lambda x: torch.func.functional_call(model, params, (x,)), inputs, targets)

    return torch.autograd.functional.hessian(loss_of, flat)


def test_hessian_products_and_top_eigenvalue_match_dense_linear_algebra():
    model, inputs, targets = small_problem()
    parameters = list(model.parameters())
    dense = dense_hessian(model, inputs, targets)
    product = hessian_products(squared_loss(model, inputs, targets), parameters)
    vector = torch.randn(len(dense), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(product(vector), dense @ vector, rtol=1e-10, atol=1e-12)
    top = top_eigenvalue(product, len(dense), steps=len(dense), tolerance=1e-12, like=vector)
    assert top.converged and abs(top.value - torch.linalg.eigvalsh(dense)[-1].item()) < 1e-8
    again = top_eigenvalue(product, len(dense), steps=len(dense), tolerance=1e-12, like=vector)
    assert again == top  # a seeded start: the same weights, the same value


def test_preconditioned_sharpness_is_the_top_eigenvalue_of_p_inverse_h():
    model, inputs, targets = small_problem(seed=3)
    parameters = list(model.parameters())
    dense = dense_hessian(model, inputs, targets)
    diagonal = torch.rand(len(dense), dtype=torch.float64, generator=torch.Generator().manual_seed(2)) + 0.1
    product = preconditioned(hessian_products(squared_loss(model, inputs, targets), parameters), diagonal)
    top = top_eigenvalue(product, len(dense), steps=len(dense), tolerance=1e-12, like=diagonal)
    expected = torch.linalg.eigvals(torch.diag(1 / diagonal) @ dense).real.max().item()
    assert top.converged and abs(top.value - expected) < 1e-8 * max(1.0, abs(expected))


def test_a_few_lanczos_steps_find_a_dominant_eigenvalue():
    """The default budget (20 products) on an operator whose top eigenvalue stands clear of the rest."""
    eigenvalues = torch.cat([torch.tensor([50.0, 20.0]), torch.linspace(-1, 5, 998)]).double()
    basis, _ = torch.linalg.qr(torch.randn(1000, 1000, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    matrix = basis @ torch.diag(eigenvalues) @ basis.T
    top = top_eigenvalue(lambda v: matrix @ v, 1000, like=eigenvalues)
    assert top.converged and top.products <= 20 and abs(top.value - 50.0) < 50.0 * 1e-3


def test_the_preconditioner_is_what_the_optimizer_divides_by():
    """After a first step, -lr P^-1 g gives back the step: Adam's update is -lr m_hat / (sqrt(v_hat) + eps) with
    m_hat = g after one step, RMSprop's -lr g / (sqrt(v) + eps), Adagrad's -lr g / (sqrt(sum) + eps)."""
    from optbench.diagnostics.preconditioner import stability
    from optbench.optim.adam import Adam as ScratchAdam

    for make in (
        lambda p: torch.optim.Adam(p, lr=0.01),
        lambda p: ScratchAdam(p, lr=0.01),
        lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.0),
        lambda p: torch.optim.RMSprop(p, lr=0.01),
        lambda p: torch.optim.Adagrad(p, lr=0.01),
    ):
        parameter = torch.nn.Parameter(torch.randn(7, dtype=torch.float64, generator=torch.Generator().manual_seed(4)))
        optimizer = make([parameter])
        gradient = torch.randn(7, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
        before = parameter.detach().clone()
        parameter.grad = gradient.clone()
        optimizer.step()
        read = stability(optimizer, [parameter])
        torch.testing.assert_close(parameter.detach() - before, -0.01 * gradient / read.diagonal)
    assert read.threshold == 2 / 0.01  # Adagrad, no momentum


def test_stability_thresholds():
    from optbench.diagnostics.preconditioner import stability

    parameter = torch.nn.Parameter(torch.zeros(3))
    assert stability(torch.optim.SGD([parameter], lr=0.05), [parameter]).threshold == 2 / 0.05
    assert stability(torch.optim.SGD([parameter], lr=0.1, momentum=0.9), [parameter]).threshold == (3.8 / 0.1)
    nesterov = stability(torch.optim.SGD([parameter], lr=0.1, momentum=0.9, nesterov=True), [parameter])
    assert abs(nesterov.threshold - 3.8 / (0.1 * 2.8)) < 1e-12
    adam = torch.optim.Adam([parameter], lr=0.001)
    assert stability(adam, [parameter]) is None  # before its first step: no preconditioner yet
    parameter.grad = torch.ones(3)
    adam.step()
    assert abs(stability(adam, [parameter]).threshold - 38 / 0.001) < 1e-6  # Cohen et al. 2022: 38/eta
    assert stability(torch.optim.Adamax([parameter]), [parameter]) is None  # not a readable preconditioner


# ---- a run's diagnostics ---------------------------------------------------------------------------------------

import json  # noqa: E402
import math  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from conftest import make_cfg, run  # noqa: E402

from optbench.errors import OptbenchError  # noqa: E402
from optbench.job.job import run_job  # noqa: E402

SHORT = ["iterations=30", "eval_every=15", "batch_size=100", "threads=1"]
CONTRACT = [
    "iteration",
    "lr",
    "grad_norm",
    "update_norm",
    "update_cosine",
    "sharpness",
    "preconditioned_sharpness",
    "stability_threshold",
]


def test_diagnostics_change_no_training_number_and_write_the_contract(tmp_path):
    """diagnostics.every=N: the same train.csv and test.csv bit for bit, and diagnostics.csv's columns."""
    plain = run(tmp_path / "plain", "optimizer=adam", *SHORT)
    measured = run(tmp_path / "measured", "optimizer=adam", "diagnostics.every=10", *SHORT)
    for name in ("train.csv", "test.csv"):
        a, b = (
            pd.read_csv(tmp_path / d / name).drop(columns="seconds", errors="ignore") for d in ("plain", "measured")
        )
        pd.testing.assert_frame_equal(a, b)
    assert plain["config_fingerprint"] == measured["config_fingerprint"]  # resume takes one for the other
    rows = pd.read_csv(tmp_path / "measured" / "diagnostics.csv")
    assert list(rows.columns[: len(CONTRACT)]) == CONTRACT and rows.iteration.tolist() == [10, 20, 30]
    names = ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [c for c in rows.columns if c.startswith("update_ratio/")] == [f"update_ratio/{n}" for n in names]
    assert [c for c in rows.columns if c.startswith("grad_norm/")] == [f"grad_norm/{n}" for n in names]
    assert (rows.lr == 0.001).all() and np.allclose(rows.stability_threshold, 38 / 0.001)
    assert (rows.sharpness > 0).all() and (rows.preconditioned_sharpness > rows.sharpness).all()
    assert ((rows.update_cosine > -1) & (rows.update_cosine <= 1)).all()
    per_parameter = np.sqrt(sum(rows[f"grad_norm/{n}"] ** 2 for n in names))
    np.testing.assert_allclose(rows.grad_norm, per_parameter, rtol=1e-6)
    above = rows.iteration[rows.preconditioned_sharpness > rows.stability_threshold]
    seen = measured["diagnostics"]
    assert seen["last"]["iteration"] == 30 and seen["first_above_threshold"] == (above.min() if len(above) else None)


def test_the_update_norm_is_the_weights_change_and_the_cosine_that_of_successive_steps(tmp_path):
    """Plain SGD: the update is -lr g, so update_norm = lr grad_norm and each update_ratio = lr |g| / |w|."""
    run(tmp_path, "optimizer=sgd", "optimizer.lr=0.1", "diagnostics.every=7", "diagnostics.sharpness=false", *SHORT)
    rows = pd.read_csv(tmp_path / "diagnostics.csv")
    np.testing.assert_allclose(rows.update_norm, 0.1 * rows.grad_norm, rtol=1e-5)
    assert rows.iteration.tolist() == [7, 14, 21, 28] and rows.sharpness.isna().all()
    np.testing.assert_allclose(rows.stability_threshold, 2 / 0.1)
    at_evaluations = ["diagnostics.every=eval", "diagnostics.sharpness=false", "iterations=32", "eval_every=15"]
    run(tmp_path / "eval", "optimizer=sgd", *at_evaluations, "batch_size=100", "threads=1")
    assert pd.read_csv(tmp_path / "eval" / "diagnostics.csv").iteration.tolist() == [15, 30, 32]  # and the last


def test_the_sharpness_of_quadratic_deep_is_its_hessians_top_eigenvalue(tmp_path):
    """DeepOBS's quadratic: the Hessian optbench builds itself, whose top eigenvalue (in (30, 60)) is known."""
    from optbench.tasks import build_task

    cfg = make_cfg(
        "task=quadratic_deep",
        "optimizer=sgd",
        "optimizer.lr=0.01",
        "iterations=4",
        "eval_every=4",
        "diagnostics.every=2",
    )
    summary = run_job(cfg, tmp_path)
    task = build_task(cfg)
    task.setup(torch.device("cpu"))
    top = torch.linalg.eigvalsh(task.hessian.double())[-1].item()
    rows = pd.read_csv(tmp_path / "diagnostics.csv")
    assert 30 < top < 60 and np.allclose(rows.sharpness, top, rtol=1e-3)
    assert summary["status"] == "completed"


def test_the_sharpness_of_a_2d_function_is_its_exact_hessians(tmp_path):
    """Rosenbrock after one step: the larger eigenvalue of its 2x2 Hessian at the point the step reached."""
    cfg = make_cfg(
        "task=rosenbrock", "optimizer=sgd", "optimizer.lr=1e-5", "iterations=1", "eval_every=1", "diagnostics.every=1"
    )
    run_job(cfg, tmp_path)
    row = pd.read_csv(tmp_path / "diagnostics.csv").iloc[0]
    x, y = (float(v) for v in json.loads((tmp_path / "summary.json").read_text())["final_parameters"]["point"])
    hessian = torch.tensor([[1200 * x**2 - 400 * y + 2, -400 * x], [-400 * x, 200.0]], dtype=torch.float64)
    assert math.isclose(row.sharpness, torch.linalg.eigvalsh(hessian)[-1].item(), rel_tol=1e-4)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["diagnostics.every=0"], "diagnostics.every=0 must be a positive whole number, or eval, or null"),
        (["diagnostics.every=5", "diagnostics.batch_size=70000"], "diagnostics.batch_size=70000 is larger than"),
        (
            ["diagnostics.every=5", "optimizer=lion", "diagnostics.preconditioned=true"],
            "optimizer=lion (Lion) keeps no diagonal preconditioner",
        ),
        (["diagnostics.every=5", "diagnostics.tolerance=0"], "diagnostics.tolerance=0 must be a number in (0, 1]"),
    ],
)
def test_bad_diagnostics_settings_are_one_message(tmp_path, overrides, message):
    with pytest.raises(OptbenchError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        run(tmp_path, *overrides, *SHORT)


def test_a_diverged_runs_advice_says_what_the_diagnostics_saw(tmp_path):
    summary = run(tmp_path, "optimizer=sgd", "optimizer.lr=20", "diagnostics.every=1", *SHORT)
    assert summary["status"] == "diverged"
    assert "Diagnostics: at iteration" in summary["advice"] and "stability threshold of 0.1" in summary["advice"]
    first = summary["diagnostics"]["first_above_threshold"]
    assert first is not None and first < summary["diverged_at"]


def test_a_job_with_diagnostics_runs_alone_in_a_vectorised_sweep():
    from optbench.sweeps.vectorized.grouping import solo_reason

    assert "diagnostics.every is set" in solo_reason(make_cfg("optimizer=adam", "diagnostics.every=10"))
    assert solo_reason(make_cfg("optimizer=adam")) is None


def test_the_squared_loss_is_cohen_et_als(tmp_path):
    """0.5 ||f(x) - onehot(y)||^2 summed over classes, averaged over the examples (their SquaredLoss / n)."""
    from optbench.tasks.supervised import loss_function

    outputs = torch.randn(6, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 3, 9, 1, 1, 5])
    onehot = torch.nn.functional.one_hot(labels, 10).double()
    expected = 0.5 * ((outputs - onehot) ** 2).sum() / 6
    assert torch.isclose(loss_function("classification", outputs, labels, loss="squared"), expected)
    assert torch.isclose(loss_function("classification", outputs, labels, "sum", loss="squared"), 6 * expected)


@pytest.mark.slow  # the fast tier keeps the MLP's end-to-end tests
def test_the_eos_preset_is_full_batch_gradient_descent_on_5000_images(tmp_path):
    summary = run(tmp_path, "task=eos", "optimizer=sgd", "iterations=2", "eval_every=2", "diagnostics.every=2")
    assert (summary["batch_size"], summary["model_layers"], summary["task"]) == (5000, [784, 200, 200, 10], "eos")
    rows = pd.read_csv(tmp_path / "diagnostics.csv")
    assert rows.stability_threshold.tolist() == [2 / 0.05] and rows.sharpness.iloc[0] > 0
    with pytest.raises(OptbenchError, match=r"task.train_examples=70000 is more than task=eos's training split"):
        run(tmp_path / "big", "task=eos", "task.train_examples=70000", "iterations=1")
    with pytest.raises(OptbenchError, match=r"task.loss='hinge' is not a loss optbench knows"):
        run(tmp_path / "hinge", "task=eos", "task.loss=hinge", "iterations=1")


@pytest.mark.slow  # the fast tier keeps the MLP's end-to-end tests
def test_a_report_draws_the_sharpness_and_tables_its_ratio(tmp_path):
    from optbench.reporting.build import build_report

    for lr in ("0.05", "0.5"):
        run(tmp_path / f"sgd{lr}", "optimizer=sgd", f"optimizer.lr={lr}", "diagnostics.every=10", *SHORT)
    report = build_report([tmp_path], tmp_path / "report")
    assert {"sharpness.png", "update_ratios.png"} <= {path.name for path in report.files}
    ratios = []  # without Hydra's overrides the two runs are one group (`sgd`): its value is their mean
    for lr in (0.05, 0.5):
        rows = pd.read_csv(tmp_path / f"sgd{lr:g}" / "diagnostics.csv")
        ratios.append(rows.sharpness.iloc[-1] / rows.stability_threshold.iloc[-1])
    assert report.table.sharpness_to_threshold.tolist() == pytest.approx([np.mean(ratios)], rel=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("lr", [0.05, 0.1])
def test_full_batch_gradient_descent_settles_at_the_edge_of_stability(tmp_path, lr):
    """Cohen et al. (2021): the preset's run at step size eta, its sharpness averaged over the last third of the run
    within 15% of 2/eta (0.05: it rises from about 33 to 40 first; 0.1: it starts above 20 and falls to it)."""
    summary = run(tmp_path, "task=eos", "optimizer=sgd", f"optimizer.lr={lr}")
    rows = pd.read_csv(tmp_path / "diagnostics.csv")
    last_third = rows[rows.iteration > summary["iterations"] * 2 / 3]
    assert summary["status"] == "completed" and len(rows) == 50
    assert abs(last_third.sharpness.mean() / (2 / lr) - 1) < 0.15


def test_blown_up_weights_give_no_curvature_and_no_crash():
    """A diverging run's weights overflow before the divergence check stops it: Lanczos returns NaN, not an error."""
    top = top_eigenvalue(lambda v: v * float("inf"), 10, like=torch.zeros(1, dtype=torch.float64))
    assert math.isnan(top.value) and not top.converged
    overflowing = torch.tensor([[1e308, 1e308], [1e308, -1e308]], dtype=torch.float64)
    assert math.isnan(top_eigenvalue(lambda v: overflowing @ (overflowing @ v), 2, like=overflowing).value)


@pytest.mark.slow  # the fast tier keeps the MLP's end-to-end tests
def test_the_transformer_s_sharpness_goes_through_attentions_math_kernel(tmp_path):
    """CPU flash attention has no double backward: the measurement takes the math kernel; training is unchanged."""
    lm = ["task=shakespeare_char", "optimizer=adamw", "iterations=4", "eval_every=4", "batch_size=4", "threads=1"]
    plain = run(tmp_path / "plain", *lm)
    measured = run(tmp_path / "measured", *lm, "diagnostics.every=2", "diagnostics.batch_size=8")
    assert plain["final_test_loss"] == measured["final_test_loss"]
    rows = pd.read_csv(tmp_path / "measured" / "diagnostics.csv")
    assert rows.iteration.tolist() == [2, 4] and (rows.sharpness > 0).all()
    assert rows.preconditioned_sharpness.notna().all()  # AdamW


@pytest.mark.slow
def test_the_cnn_s_diagnostics(tmp_path):
    """DeepOBS's 2c2d CNN: convolutions and max-pooling through double backward."""
    summary = run(
        tmp_path, "task=fmnist_2c2d", "iterations=2", "eval_every=2", "diagnostics.every=1", "diagnostics.batch_size=16"
    )
    rows = pd.read_csv(tmp_path / "diagnostics.csv")
    assert summary["status"] == "completed" and (rows.sharpness > 0).all() and rows.update_cosine.notna().iloc[1]
    assert len([c for c in rows.columns if c.startswith("update_ratio/")]) == 8  # 4 layers, weight and bias
