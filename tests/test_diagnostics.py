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
