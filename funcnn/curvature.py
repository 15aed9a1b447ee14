"""Curvature of a loss and the tangent kernel of a network: Hessian-vector products, the top Hessian eigenvalues, and
the empirical neural tangent kernel. Each needs forward mode through funcnn's primitives (their tangent rules) as
well as reverse mode (their backward rules), so each is a check of both.

    from funcnn import curvature
    hv = curvature.hvp(loss, params, v, batch)                    # H v, forward over reverse
    values, vectors = curvature.hessian_eigenvalues(loss, params, batch, k=3)    # Lanczos: the k largest
    kernel = curvature.empirical_ntk(f, params, x1, x2)           # (N1, N2, O, O): J(x1) J(x2)^T

`loss(params, *args)` returns a scalar; `f(params, x)` the network's outputs (N, O). Parameters are any pytree.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree


def hvp(loss: Callable, params, v, *args):
    """H v, the Hessian of loss(params, *args) with respect to params applied to v (a pytree like params): the
    JVP of the gradient (forward over reverse: one forward and one backward pass, carrying tangents)."""
    _check_like("hvp", params, v)
    return jax.jvp(lambda p: jax.grad(loss)(p, *args), (params,), (v,))[1]


def gauss_newton_vp(f: Callable, loss_of_outputs: Callable, params, v, *args):
    """G v = J^T H_L J v, the generalised Gauss-Newton matrix of loss_of_outputs(f(params, *args)) applied to v: a
    JVP through the network, a Hessian-vector product of the (convex) output loss, a VJP back. Positive
    semi-definite where the output loss is convex, unlike the Hessian."""
    _check_like("gauss_newton_vp", params, v)
    out, jv = jax.jvp(lambda p: f(p, *args), (params,), (v,))
    hjv = jax.jvp(jax.grad(loss_of_outputs), (out,), (jv,))[1]
    return jax.vjp(lambda p: f(p, *args), params)[1](hjv)[0]


def _check_like(name, params, v):
    """ValueError naming the first leaf of v whose structure or shape differs from params'."""
    if jax.tree_util.tree_structure(params) != jax.tree_util.tree_structure(v):
        raise ValueError(f"{name}: v must be a pytree like params; got structure {jax.tree_util.tree_structure(v)} "
                         f"for params {jax.tree_util.tree_structure(params)}")
    for (path, p), w in zip(jax.tree_util.tree_flatten_with_path(params)[0], jax.tree_util.tree_leaves(v)):
        if jnp.shape(p) != jnp.shape(w):
            raise ValueError(f"{name}: v{jax.tree_util.keystr(path)} has shape {jnp.shape(w)}, params "
                             f"{jax.tree_util.keystr(path)} has {jnp.shape(p)}")


@functools.partial(jax.jit, static_argnums=0)
def _flat_hvp(loss, vec, params, args):
    """H v with v and the result flat: compiled once per loss function, the parameters and data passed as arguments
    (closed over, they would be compiled in as constants, and XLA would fold the whole network at compile time)."""
    flat, unravel = ravel_pytree(params)
    return ravel_pytree(hvp(loss, params, unravel(vec.astype(flat.dtype)), *args))[0]


class Eigen(NamedTuple):
    values: np.ndarray      # (k,), largest first
    vectors: list           # k pytrees like params, unit norm
    residuals: np.ndarray   # |H v - lambda v| of each pair: how far from converged


def hessian_eigenvalues(loss: Callable, params, *args, k: int = 1, iterations: int = 30, seed: int = 0) -> Eigen:
    """The k algebraically largest eigenvalues of the Hessian of loss(params, *args) and their eigenvectors, by
    Lanczos with full reorthogonalisation: `iterations` Hessian-vector products (each `hvp`, compiled once) build a
    Krylov basis, and the eigenpairs of the small tridiagonal matrix they span approximate the extreme ones of H.
    With iterations >= the number of parameters the result is exact; the extreme eigenvalues converge first.
    Residuals |H v - lambda v| are returned so that convergence can be judged.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"hessian_eigenvalues: k must be an int >= 1, got {k!r}")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < k:
        raise ValueError(f"hessian_eigenvalues: iterations must be an int >= k = {k}, got {iterations!r}")
    flat, unravel = ravel_pytree(params)
    n = flat.size
    if n == 0:
        raise ValueError("hessian_eigenvalues: params hold no entries")
    m = min(iterations, n)

    def matvec(vec):
        return _flat_hvp(loss, vec, params, args)

    rng = np.random.default_rng(seed)
    q = rng.standard_normal(n)
    q /= np.linalg.norm(q)
    basis = np.zeros((m, n))
    alpha, beta = np.zeros(m), np.zeros(m)
    for j in range(m):
        basis[j] = q
        w = np.array(matvec(jnp.asarray(q)), np.float64)  # a writable copy
        alpha[j] = q @ w
        w -= basis[: j + 1].T @ (basis[: j + 1] @ w)  # full reorthogonalisation (twice: float32 HVPs)
        w -= basis[: j + 1].T @ (basis[: j + 1] @ w)
        if j + 1 == m:
            break
        beta[j] = np.linalg.norm(w)
        if beta[j] < 1e-12 * max(1.0, abs(alpha[j])):  # an invariant subspace: the spectrum seen is exact
            m = j + 1
            break
        q = w / beta[j]
    tri = np.diag(alpha[:m]) + np.diag(beta[: m - 1], 1) + np.diag(beta[: m - 1], -1)
    theta, s = np.linalg.eigh(tri)
    order = np.argsort(theta)[::-1][: min(k, m)]
    vectors, residuals = [], []
    for i in order:
        vec = basis[:m].T @ s[:, i]
        vec /= np.linalg.norm(vec)
        hv = np.asarray(matvec(jnp.asarray(vec)), np.float64)
        residuals.append(float(np.linalg.norm(hv - theta[i] * vec)))
        vectors.append(unravel(jnp.asarray(vec, flat.dtype)))
    return Eigen(theta[order], vectors, np.asarray(residuals))


def empirical_ntk(f: Callable, params, x1, x2=None):
    """Theta[n1, n2, a, b] = sum_p df(x1)[n1, a]/dp df(x2)[n2, b]/dp: the empirical neural tangent kernel of the
    network f(params, x) -> (N, O), J(x1) J(x2)^T, without forming either Jacobian: for every output (n2, b) of
    x2, a VJP gives the row J(x2)^T e, and a JVP of f(x1) along it gives a column of the kernel (forward and reverse
    mode together, vmapped over the N2 * O outputs). x2 defaults to x1.
    """
    x2 = x1 if x2 is None else x2
    out2, pull = jax.vjp(lambda p: f(p, x2), params)
    if out2.ndim != 2:
        raise ValueError(f"empirical_ntk: f must return (N, O) outputs, got shape {out2.shape}")
    n2, o = out2.shape
    basis = jnp.eye(n2 * o, dtype=out2.dtype).reshape(n2 * o, n2, o)

    def column(e):
        row = pull(e)[0]                                          # J(x2)^T e, a pytree like params
        return jax.jvp(lambda p: f(p, x1), (params,), (row,))[1]  # J(x1) J(x2)^T e: (N1, O)

    columns = jax.vmap(column)(basis)                             # (N2 * O, N1, O)
    return jnp.moveaxis(columns.reshape(n2, o, *columns.shape[1:]), (0, 1), (1, 3))


__all__ = ["hvp", "gauss_newton_vp", "hessian_eigenvalues", "empirical_ntk", "Eigen"]
