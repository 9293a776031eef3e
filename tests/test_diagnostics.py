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
