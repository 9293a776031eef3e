"""The loss's curvature from Hessian-vector products: the top eigenvalue of the Hessian (the sharpness), or of
the preconditioned Hessian P^-1 H an adaptive optimizer steps on, by Lanczos iteration.

Cohen et al. (2021, locuslab/edge-of-stability `utilities.py`) compute the sharpness with scipy's `eigsh`, an
implicitly restarted Lanczos, over Hessian-vector products by double backward. Here the Lanczos iteration is
written out in torch (full reorthogonalisation, a few tens of steps): it runs on the model's device with no
copy to numpy per product, starts from a seeded vector, so the same weights give the same value, and keeps
scipy out of a training run. The Hessian of the loss on a fixed batch is built once per measurement: one
forward pass and one backward pass with `create_graph`; each product is then one more backward through that
graph.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

MatVec = Callable[[torch.Tensor], torch.Tensor]


def hessian_products(loss: torch.Tensor, parameters: list[torch.Tensor]) -> MatVec:
    """v -> H v for the Hessian of `loss` (a scalar with its graph) in `parameters`, all flattened into one
    vector in `parameters`' order. The gradient's graph is kept for as many products as are asked."""
    gradient = torch.autograd.grad(loss, parameters, create_graph=True)
    flat_gradient = torch.cat([g.reshape(-1) for g in gradient])

    def product(vector: torch.Tensor) -> torch.Tensor:
        parts = torch.autograd.grad(flat_gradient, parameters, grad_outputs=vector, retain_graph=True)
        return torch.cat([p.reshape(-1) for p in parts]).detach()

    return product


def preconditioned(product: MatVec, diagonal: torch.Tensor) -> MatVec:
    """v -> P^-1/2 H P^-1/2 v for a positive diagonal P: the same eigenvalues as P^-1 H, whose top one is the
    preconditioned sharpness of Cohen et al. (2022), but symmetric, so Lanczos applies."""
    scale = diagonal.rsqrt()
    return lambda vector: scale * product(scale * vector)


@dataclass(frozen=True)
class Eigenvalue:
    """The top eigenvalue Lanczos found, the products it took, and whether it met the tolerance."""

    value: float
    products: int
    converged: bool


def top_eigenvalue(
    product: MatVec, dimension: int, *, steps: int = 20, tolerance: float = 1e-3, seed: int = 0, like: torch.Tensor
) -> Eigenvalue:
    """The largest (algebraic) eigenvalue of the symmetric operator `product` on R^dimension by Lanczos with full
    reorthogonalisation: at most `steps` products, stopping once the top Ritz pair's residual ||A y - theta y||
    (Lanczos gives it for free: beta times the pair's last component) is at most `tolerance` |theta|. The start
    vector is drawn from a generator seeded with `seed` (never torch's global one: a measurement must not change
    the run's draws). `like` gives dtype and device."""
    generator = torch.Generator().manual_seed(seed)
    start = torch.randn(dimension, generator=generator, dtype=torch.float64).to(like)
    basis = [start / start.norm()]
    alphas: list[float] = []
    betas: list[float] = []
    value = float("nan")
    for step in range(min(steps, dimension)):
        w = product(basis[-1])
        alphas.append(float(torch.dot(w, basis[-1])))
        stacked = torch.stack(basis)
        w = w - stacked.T @ (stacked @ w)  # full reorthogonalisation, twice is enough (Kahan)
        w = w - stacked.T @ (stacked @ w)
        beta = float(w.norm())
        if not (math.isfinite(alphas[-1]) and math.isfinite(beta)):  # weights blown up: no curvature to speak of
            return Eigenvalue(math.nan, step + 1, False)
        value, last_component = _ritz_top(alphas, betas)
        if beta * abs(last_component) <= tolerance * max(abs(value), 1e-12):
            return Eigenvalue(value, step + 1, True)
        betas.append(beta)
        basis.append(w / beta)
    return Eigenvalue(value, len(alphas), False)


def _ritz_top(alphas: list[float], betas: list[float]) -> tuple[float, float]:
    """The top eigenvalue of the Lanczos tridiagonal matrix so far and its eigenvector's last component (float64
    on the CPU: the matrix is tiny)."""
    tridiagonal = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if betas:
        off = torch.tensor(betas, dtype=torch.float64)
        tridiagonal += torch.diag(off, 1) + torch.diag(off, -1)
    values, vectors = torch.linalg.eigh(tridiagonal)
    return float(values[-1]), float(vectors[-1, -1])
