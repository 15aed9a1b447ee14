"""Curvature of a loss and the tangent kernel of a network: Hessian-vector products, the top Hessian eigenvalues, and
the empirical neural tangent kernel. Each needs forward mode through funcnn's primitives (their tangent rules) as
well as reverse mode (their backward rules), so each is a check of both.

    from funcnn import curvature
    hv = curvature.hvp(loss, params, v, batch)                    # H v, forward over reverse
    top = curvature.hessian_eigenvalues(loss, params, batch, k=3)  # block Lanczos: the 3 largest, with multiplicity
    kernel = curvature.empirical_ntk(f, params, x1, x2)           # (N1, N2, O, O): J(x1) J(x2)^T

`loss(params, *args)` returns a scalar; `f(params, x)` the network's outputs (N, O). Parameters are any pytree.
"""

from __future__ import annotations

import collections
import hashlib
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import jaxpr_as_fun
from jax.flatten_util import ravel_pytree


def hvp(loss: Callable, params, v, *args):
    """H v, the Hessian of loss(params, *args) with respect to params applied to v (a pytree like params): the
    JVP of the gradient (forward over reverse: one forward and one backward pass, carrying tangents)."""
    _check_params("hvp", params)
    _check_like("hvp", params, v)
    return jax.jvp(lambda p: jax.grad(loss)(p, *args), (params,), (v,))[1]


def gauss_newton_vp(f: Callable, loss_of_outputs: Callable, params, v, *args):
    """G v = J^T H_L J v, the generalised Gauss-Newton matrix of loss_of_outputs(f(params, *args)) applied to v: a
    JVP through the network, a Hessian-vector product of the (convex) output loss, a VJP back. Positive
    semi-definite where the output loss is convex, unlike the Hessian."""
    _check_params("gauss_newton_vp", params)
    _check_like("gauss_newton_vp", params, v)
    out, jv = jax.jvp(lambda p: f(p, *args), (params,), (v,))
    hjv = jax.jvp(jax.grad(loss_of_outputs), (out,), (jv,))[1]
    return jax.vjp(lambda p: f(p, *args), params)[1](hjv)[0]


def _check_params(name, params):
    """TypeError naming the first leaf of params that is not a floating-point array (a Hessian needs them)."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(f"{name}: params{jax.tree_util.keystr(path)} has dtype {dtype}; derivatives are taken "
                            "with respect to floating-point parameters only (keep integer state out of params)")


def _check_like(name, params, v):
    """ValueError naming the first leaf of v whose structure, shape or dtype differs from params'."""
    if jax.tree_util.tree_structure(params) != jax.tree_util.tree_structure(v):
        raise ValueError(f"{name}: v must be a pytree like params; got structure {jax.tree_util.tree_structure(v)} "
                         f"for params {jax.tree_util.tree_structure(params)}")
    for (path, p), w in zip(jax.tree_util.tree_flatten_with_path(params)[0], jax.tree_util.tree_leaves(v)):
        where = jax.tree_util.keystr(path)
        named = f"params {where}" if where else "params"
        if jnp.shape(p) != jnp.shape(w):
            raise ValueError(f"{name}: v{where} has shape {jnp.shape(w)}, {named} has {jnp.shape(p)}")
        if jnp.result_type(p) != jnp.result_type(w):
            raise ValueError(f"{name}: v{where} has dtype {jnp.result_type(w)}, {named} has "
                             f"{jnp.result_type(p)}: a tangent has its primal's dtype (v.astype(...))")


class Eigen(NamedTuple):
    values: np.ndarray      # (k,), largest first, each repeated as often as its multiplicity
    vectors: list           # k pytrees like params, unit norm, orthogonal to each other
    residuals: np.ndarray   # |H v - lambda v| of each pair: how far from converged
    dimension: int          # the dimension of the subspace searched; == the number of parameters: exact
    exact: bool             # whether the subspace was the whole parameter space (the values are H's own)


def _is_array(a) -> bool:
    return isinstance(a, (jax.Array, np.ndarray, np.generic))


def _split_args(args):
    """The extra arguments as (array leaves, a function rebuilding args from them): arrays become arguments of the
    compiled Hessian-vector product, anything else (a Python flag, a string, None) stays a constant of it."""
    leaves, treedef = jax.tree_util.tree_flatten(args)
    is_array = [_is_array(leaf) for leaf in leaves]
    arrays = [leaf for leaf, a in zip(leaves, is_array) if a]

    def rebuild(given):
        given = iter(given)
        return jax.tree_util.tree_unflatten(treedef, [next(given) if a else leaf for leaf, a in zip(leaves, is_array)])

    return arrays, rebuild


def _check_eigen_arguments(loss, params, arrays, rebuild, k, iterations, seed):
    """funcnn's errors for what hessian_eigenvalues cannot take; the number of parameters otherwise."""
    if not callable(loss):
        raise TypeError(f"hessian_eigenvalues: loss must be a function loss(params, *args), got {type(loss).__name__}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"hessian_eigenvalues: k must be an int >= 1, got {k!r}")
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise ValueError(f"hessian_eigenvalues: iterations must be an int >= 1 (block Lanczos steps), got "
                         f"{iterations!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"hessian_eigenvalues: seed must be an int >= 0, got {seed!r}")
    _check_params("hessian_eigenvalues", params)
    n = sum(int(np.size(leaf)) for leaf in jax.tree_util.tree_leaves(params))
    if n == 0:
        raise ValueError("hessian_eigenvalues: params hold no entries")
    if k > n:
        raise ValueError(f"hessian_eigenvalues: k = {k} is more eigenvalues than the Hessian has: params hold {n} "
                         "entries")
    try:
        value = jax.eval_shape(lambda p, given: loss(p, *rebuild(given)), params, arrays)
    except (TypeError, ValueError) as err:
        raise ValueError(f"hessian_eigenvalues: loss(params, *args) fails: {type(err).__name__}: "
                         f"{str(err).splitlines()[0]}") from None
    if not isinstance(value, jax.ShapeDtypeStruct) or value.shape != ():
        shape = getattr(value, "shape", type(value).__name__)
        raise ValueError(f"hessian_eigenvalues: loss(params, *args) must return a scalar, got {shape} (reduce it: "
                         "the mean of the per-example losses)")
    return n


def hessian_eigenvalues(loss: Callable, params, *args, k: int = 1, iterations: int = 30, seed: int = 0) -> Eigen:
    """The k algebraically largest eigenvalues of the Hessian of loss(params, *args), each as often as its
    multiplicity, and orthonormal eigenvectors, by block Lanczos (block size k) with full reorthogonalisation.

    `iterations` steps, each k Hessian-vector products (`hvp`, vmapped: one compiled call), build an orthonormal
    basis of a block Krylov space of depth `iterations`, and the Rayleigh-Ritz eigenpairs of H on that basis
    approximate H's extreme ones. A block of k vectors resolves an eigenvalue of multiplicity up to k (a single
    Lanczos vector sees each distinct eigenvalue once). When the Krylov space closes (an invariant subspace: a
    low-rank Hessian, a start inside an eigenspace) the basis grows with fresh random directions orthogonal to it,
    so the search continues.

    What is exact, and when: once iterations x k reaches the number of parameters the basis is the whole space and
    the values are H's own, up to float rounding (`exact` is True); with fewer, they are Ritz values, which lie inside
    H's spectrum and converge from the extreme ends first; `residuals` |H v - lambda v| say how far each pair is
    from converged, and `dimension` how large the space searched was.

    The block Hessian-vector product is traced on every call and compiled again unless the traced program, its
    constants included, equals one compiled before: a loss that reads changed data, closed over or passed, gives the
    new answer. Array arguments in `args` are arguments of it, anything else (a Python flag) is a constant.

    Raises ValueError / TypeError naming the argument: k < 1 or more than the parameters, iterations < 1, seed < 0,
    a loss that does not return a scalar or is not finite at params, non-floating parameters.
    """
    arrays, rebuild = _split_args(args)
    n = _check_eigen_arguments(loss, params, arrays, rebuild, k, iterations, seed)
    flat, unravel = ravel_pytree(params)
    value = float(loss(params, *args))
    if not np.isfinite(value):
        raise ValueError(f"hessian_eigenvalues: loss(params, *args) is {value} at these parameters: the Hessian is "
                         "not defined there")

    def block_hvp(vectors, params, arrays):  # H v for each row of `vectors`, the parameters and data as arguments
        def one(vec):
            tangent = unravel(vec.astype(flat.dtype))
            return ravel_pytree(hvp(loss, params, tangent, *rebuild(arrays)))[0]

        return jax.vmap(one)(vectors)

    compiled = _compiled(block_hvp, (jax.ShapeDtypeStruct((k, n), flat.dtype), params, arrays))

    def apply(block):
        rows = np.zeros((k, n), flat.dtype)      # one compiled shape: a short last block is padded with zeros
        rows[:len(block)] = block
        out = np.asarray(compiled(jnp.asarray(rows), params, arrays), np.float64)[:len(block)]
        if not np.all(np.isfinite(out)):
            raise ValueError("hessian_eigenvalues: a Hessian-vector product is not finite (the loss overflows or "
                             "divides by zero near params)")
        return out

    rng = np.random.default_rng(seed)
    budget = min(int(iterations) * k, n)          # Hessian-vector products: k per step, at most one per dimension
    basis = np.zeros((0, n))                      # rows: an orthonormal basis
    images = np.zeros((0, n))                     # rows: H applied to each basis row
    block = _orthonormal_complement(rng.standard_normal((k, n)), basis, rng, k)
    while block.shape[0]:
        basis, images = np.vstack([basis, block]), np.vstack([images, apply(block)])
        room = budget - basis.shape[0]
        if room <= 0:
            break
        # the next block: H times the newest block, minus its components along the basis (the Krylov step)
        block = _orthonormal_complement(images[-block.shape[0]:], basis, rng, min(k, room))
    projected = basis @ images.T                  # Q^T H Q (symmetric up to rounding)
    theta, s = np.linalg.eigh((projected + projected.T) / 2)
    order = np.argsort(theta)[::-1][:k]
    ritz = s[:, order].T @ basis                  # rows: the Ritz vectors
    residuals = np.linalg.norm(s[:, order].T @ images - theta[order, None] * ritz, axis=1)
    vectors = [unravel(jnp.asarray(v / np.linalg.norm(v), flat.dtype)) for v in ritz]
    dimension = basis.shape[0]
    return Eigen(theta[order], vectors, residuals, dimension, dimension == n)


_COMPILED: collections.OrderedDict = collections.OrderedDict()  # (jaxpr, digests of its constants) -> compiled
_KEEP = 4


def _digest(const) -> str:
    """The dtype, shape and SHA-256 of a constant's bytes (a key array by its key data)."""
    array = jax.random.key_data(const) if jax.dtypes.issubdtype(const.dtype, jax.dtypes.prng_key) else const
    array = np.asarray(array)
    return f"{array.dtype}{array.shape}:{hashlib.sha256(array.tobytes()).hexdigest()}"


def _compiled(fn, example):
    """fn compiled for arguments like `example`, reused by a later call only when the program traced now is the
    same one: the same jaxpr and constants with the same contents (a loss that reads changed data, passed or
    closed over, traces to another program and compiles anew; tracing costs little next to compiling)."""
    closed = jax.make_jaxpr(fn)(*example)
    key = (str(closed.jaxpr), tuple(_digest(c) for c in closed.consts))
    if key in _COMPILED:
        _COMPILED.move_to_end(key)
    else:
        _COMPILED[key] = jax.jit(jaxpr_as_fun(closed))
        while len(_COMPILED) > _KEEP:
            _COMPILED.popitem(last=False)
    run = _COMPILED[key]

    def call(*args):
        (out,) = run(*jax.tree_util.tree_leaves(args))
        return out

    return call


def _orthonormal_complement(candidates, basis, rng, size):
    """`size` orthonormal rows orthogonal to `basis`: the candidates' components outside it (projected out twice, as
    float32 products need), the directions among them that are not rounding noise (an SVD with a relative
    threshold), topped up with random directions where they fall short (the Krylov space closed); fewer only when
    the basis already spans everything."""
    n = candidates.shape[1]
    size = min(size, n - basis.shape[0])
    found = np.zeros((0, n))
    pool, scale = candidates, np.linalg.norm(candidates, axis=1).max(initial=0.0)
    for _ in range(3):                            # the candidates, then random top-ups
        for _ in range(2):
            pool = pool - (pool @ basis.T) @ basis
            pool = pool - (pool @ found.T) @ found
        _, sigma, rows = np.linalg.svd(pool, full_matrices=False)
        found = np.vstack([found, rows[sigma > 1e-10 * max(scale, 1e-300)]])[:size]
        if found.shape[0] >= size:
            break
        pool = rng.standard_normal((size - found.shape[0], n))
        scale = np.linalg.norm(pool, axis=1).max()
    return found


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
