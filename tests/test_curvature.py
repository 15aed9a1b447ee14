"""funcnn.curvature against dense references on models small enough to form them: the Hessian-vector product
against jax.hessian of the same network built from lax, Lanczos's top eigenvalues against numpy's eigh of that
Hessian, the empirical NTK against explicit Jacobians; and jax.hessian of LeNet-5 and ResNet-20 losses (a small
batch, a slice of the parameters) against the same networks built from lax."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import funcnn as fn
from funcnn import curvature, layers as L, models

from .helpers import normal

DN = ("NHWC", "HWIO", "NHWC")


def _tiny_cnn():
    return L.serial(L.Conv(3, 3, padding="SAME"), L.Relu(), L.MaxPool(2), L.Conv(2, 3), L.Tanh(), L.Flatten(),
                    L.Dense(3))


def _problem(seed=0):
    init, apply = _tiny_cnn()
    _, params, state = init(jax.random.PRNGKey(seed), (4, 8, 8, 2))
    params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), params)  # compared at float64 tolerances
    rng = np.random.default_rng(seed)
    x, y = normal(rng, 4, 8, 8, 2), jnp.array([0, 1, 2, 1])

    def loss(params, x, y):
        logits, _ = apply(params, state, x)
        return jnp.mean(fn.softmax_cross_entropy(logits, y))

    return apply, state, params, x, y, loss


def use_lax(monkeypatch):
    """The layers' primitives swapped for plain lax / jax.numpy: 'the same network built from lax'."""
    from funcnn import primitives as P
    from funcnn.primitives.geometry import make_geometry
    from funcnn.primitives.pool import pool_geometry

    def conv2d(x, w, b=None, *, stride=1, padding="VALID", dilation=1, groups=1, padding_mode="zeros"):
        assert padding_mode == "zeros"
        geo = make_geometry("conv2d", x.shape, w.shape[:2], stride, padding, dilation)
        z = lax.conv_general_dilated(x, w, geo.stride, geo.padding, rhs_dilation=geo.dilation, dimension_numbers=DN,
                                     feature_group_count=groups)
        return z if b is None else z + b

    def max_pool2d(x, window, stride=None, padding="VALID", ceil_mode=False, padding_mode="zeros"):
        assert padding_mode == "zeros"
        geo, _ = pool_geometry("max_pool2d", x.shape, window, stride, padding, ceil_mode)
        return lax.reduce_window(x, -jnp.inf, lax.max, (1, *geo.window, 1), (1, *geo.stride, 1),
                                 ((0, 0), *geo.padding, (0, 0)))

    def avg_pool2d(x, window, stride=None, padding="VALID", count_include_pad=True, ceil_mode=False,
                   padding_mode="zeros"):
        assert padding_mode == "zeros"
        geo, _ = pool_geometry("avg_pool2d", x.shape, window, stride, padding, ceil_mode)
        total = lax.reduce_window(x, 0.0, lax.add, (1, *geo.window, 1), (1, *geo.stride, 1),
                                  ((0, 0), *geo.padding, (0, 0)))
        return total / np.prod(geo.window)

    for name, f in dict(conv2d=conv2d, max_pool2d=max_pool2d, avg_pool2d=avg_pool2d,
                        global_avg_pool2d=lambda x: jnp.mean(x, (1, 2)),
                        dense=lambda x, w, b=None: x @ w + (0 if b is None else b),
                        relu=lambda z: jnp.where(z > 0, z, 0.0), tanh=jnp.tanh,
                        softmax_cross_entropy=lambda f, y: -jnp.take_along_axis(jax.nn.log_softmax(f), y[..., None],
                                                                                 -1)[..., 0]).items():
        # funcnn's own first: its lazy __getattr__ would otherwise read (and cache, so monkeypatch would "restore")
        # the already patched P.<name>, leaking the lax version into later tests of the worker
        monkeypatch.setattr(fn, name, getattr(fn, name))
        monkeypatch.setattr(fn, name, f)
        monkeypatch.setattr(P, name, f)


def _dense_hessian(loss, params, *args):
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    return np.asarray(jax.hessian(lambda v: loss(unravel(v), *args))(flat)), flat, unravel


def test_hvp_equals_the_lax_networks_dense_hessian(monkeypatch):
    _, _, params, x, y, loss = _problem()
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    v = normal(np.random.default_rng(1), flat.size)
    hv = jax.flatten_util.ravel_pytree(curvature.hvp(loss, params, unravel(v), x, y))[0]  # funcnn's rules
    use_lax(monkeypatch)
    dense, _, _ = _dense_hessian(loss, params, x, y)                                       # lax's autodiff
    np.testing.assert_allclose(hv, dense @ np.asarray(v), rtol=1e-9, atol=1e-12)


def _hessian_of_a_slice(model, input_shape, path, rows, seed):
    """jax.hessian of a classifier's loss with respect to the first `rows` entries of one parameter (the rest held
    at their values), on a batch of 2: with funcnn's primitives as they are."""
    init, apply = model
    _, params, state = init(jax.random.PRNGKey(seed), input_shape)
    params, state = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), (params, state))
    rng = np.random.default_rng(seed)
    x, y = normal(rng, *input_shape), jnp.array([1, 3])
    leaf = params
    for key in path:
        leaf = leaf[key]
    full = leaf.reshape(-1)

    def loss(part):
        p = jax.tree_util.tree_map(lambda a: a, params)
        target = p
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = full.at[:rows].set(part).reshape(leaf.shape)
        logits, _ = apply(p, state, x, train=True)
        return jnp.mean(fn.softmax_cross_entropy(logits, y))

    return np.asarray(jax.hessian(loss)(full[:rows]))


@pytest.mark.parametrize("name, input_shape, path, rows", [
    ("lenet5", (2, 32, 32, 1), ("0_Conv", "w"), 75),                # conv1's first 3 filters, through everything
    ("resnet20", (2, 8, 8, 3), ("0_Conv", "w"), 54),                # the stem's first 54 weights, 20 layers deep
])
def test_hessian_of_a_network_equals_the_same_network_built_from_lax(monkeypatch, name, input_shape, path, rows):
    model = models.get(name)(10)
    ours = _hessian_of_a_slice(model, input_shape, path, rows, seed=7)
    use_lax(monkeypatch)
    theirs = _hessian_of_a_slice(models.get(name)(10), input_shape, path, rows, seed=7)
    assert ours.shape == (rows, rows) and np.abs(theirs).max() > 0
    np.testing.assert_allclose(ours, theirs, rtol=1e-8, atol=1e-9 * np.abs(theirs).max())


def test_lanczos_top_eigenvalues_match_the_dense_spectrum():
    _, _, params, x, y, loss = _problem(2)
    dense, _, _ = _dense_hessian(loss, params, x, y)
    exact = np.sort(np.linalg.eigvalsh(dense))[::-1]
    found = curvature.hessian_eigenvalues(loss, params, x, y, k=3, iterations=60)
    np.testing.assert_allclose(found.values, exact[:3], rtol=1e-6)
    assert np.all(found.residuals < 1e-5 * abs(exact[0]))
    top = jax.flatten_util.ravel_pytree(found.vectors[0])[0]
    np.testing.assert_allclose(abs(float(top @ dense @ top)), abs(exact[0]), rtol=1e-6)
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        curvature.hessian_eigenvalues(loss, params, x, y, k=0)
    with pytest.raises(ValueError, match=r"iterations must be an int >= 1 \(block Lanczos steps\), got 0"):
        curvature.hessian_eigenvalues(loss, params, x, y, k=3, iterations=0)


def _quadratic(eigenvalues, seed):
    """0.5 p^T A p with A = U diag(eigenvalues) U^T (U a random rotation), and A's eigenvalues from jax.hessian."""
    n = len(eigenvalues)
    u, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))
    a = jnp.asarray(u @ np.diag(eigenvalues) @ u.T)

    def loss(p):
        return 0.5 * p @ a @ p

    dense = np.sort(np.linalg.eigvalsh(np.asarray(jax.hessian(loss)(jnp.zeros(n)))))[::-1]
    return loss, jnp.zeros(n), dense


@pytest.mark.parametrize("spectrum", [
    [3, 3, 3, 2, 2, 1, 0.5, 0.1, 0, 0, -1, -1],              # repeated, zero and negative
    [2, 2 + 1e-9, 2 - 1e-9, 2 + 2e-9, 1, 1, -3, -3, -3, 0.2],  # a cluster, and a repeated negative end
    [5, 0, 0, 0, 0, 0, 0, 0],                                 # rank 1
    [-1, -2, -3, -3, -4, -5],                                 # negative definite: the largest are negative
])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_top_eigenvalues_with_their_multiplicity_are_exact_at_full_dimension(spectrum, k):
    """Block Lanczos: with iterations >= the parameter count, the top k are the dense jax.hessian spectrum's, each
    as often as its multiplicity. Before, a single Lanczos vector gave diag(3, 3, 3, 2, ...)'s top 3 as [3, 2, 1]
    with small residuals, and a rank-1 Hessian 2 values for k = 3."""
    loss, params, dense = _quadratic(np.asarray(spectrum, float), seed=len(spectrum) + k)
    found = curvature.hessian_eigenvalues(loss, params, k=k, iterations=len(spectrum))
    assert found.exact and found.dimension == len(spectrum) and len(found.values) == k
    np.testing.assert_allclose(found.values, dense[:k], atol=1e-12)
    assert np.all(found.residuals < 1e-12)
    vectors = np.stack([np.asarray(v) for v in found.vectors])
    np.testing.assert_allclose(vectors @ vectors.T, np.eye(k), atol=1e-12)   # orthonormal, also within a repeat


def test_two_identical_heads_give_each_eigenvalue_twice():
    """A network with two identical heads on one input: its Hessian's spectrum is the head's, each value twice."""
    rng = np.random.default_rng(5)
    x, y = normal(rng, 6, 4), jnp.array([0, 1, 2, 0, 1, 2])
    head = {"w": normal(rng, 4, 3), "b": normal(rng, 3)}
    params = {"left": head, "right": jax.tree_util.tree_map(jnp.copy, head)}

    def loss(params, x, y):
        return sum(jnp.mean(fn.softmax_cross_entropy(fn.dense(x, p["w"], p["b"]), y)) for p in params.values())

    flat, unravel = jax.flatten_util.ravel_pytree(params)
    dense = np.sort(np.linalg.eigvalsh(np.asarray(jax.hessian(lambda f: loss(unravel(f), x, y))(flat))))[::-1]
    found = curvature.hessian_eigenvalues(loss, params, x, y, k=4, iterations=flat.size)
    np.testing.assert_allclose(found.values, dense[:4], rtol=1e-10)
    np.testing.assert_allclose(found.values[0::2], found.values[1::2], rtol=1e-10)   # pairs


def test_a_loss_that_reads_changed_data_gives_the_new_answer():
    """Nothing compiled is reused across calls: a loss closed over data that changes between calls answers for the
    data it reads now (hvp did; hessian_eigenvalues returned the first call's answer)."""
    data = {"scale": 1.0}

    def loss(p):
        return data["scale"] * jnp.sum(p ** 2)

    first = curvature.hessian_eigenvalues(loss, jnp.ones(4), k=1, iterations=4)
    data["scale"] = 3.0
    second = curvature.hessian_eigenvalues(loss, jnp.ones(4), k=1, iterations=4)
    np.testing.assert_allclose([first.values[0], second.values[0]], [2.0, 6.0], rtol=1e-12)
    # data passed as an argument: one program, compiled once, and the answers follow the data
    curvature._COMPILED.clear()

    def passed(p, scale):
        return scale * jnp.sum(p ** 2)

    answers = [curvature.hessian_eigenvalues(passed, jnp.ones(4), jnp.asarray(s), k=1, iterations=4).values[0]
               for s in (1.0, 3.0, 5.0)]
    np.testing.assert_allclose(answers, [2.0, 6.0, 10.0], rtol=1e-12)
    assert len(curvature._COMPILED) == 1


def test_a_python_flag_among_the_arguments_is_a_constant():
    def loss(p, x, squared):
        return jnp.sum((p * x) ** 2) if squared else jnp.sum(p * x)

    found = curvature.hessian_eigenvalues(loss, jnp.ones(3), jnp.array([1.0, 2.0, 3.0]), True, k=1, iterations=3)
    np.testing.assert_allclose(found.values, [18.0], rtol=1e-12)


def test_empirical_ntk_equals_the_explicit_jacobians():
    apply, state, params, x, _, _ = _problem(3)

    def f(p, x):
        return apply(p, state, x)[0]

    x2 = normal(np.random.default_rng(4), 3, 8, 8, 2)
    kernel = curvature.empirical_ntk(f, params, x, x2)
    assert kernel.shape == (4, 3, 3, 3)

    def jac(x):
        j = jax.jacrev(lambda p: f(p, x))(params)
        return np.concatenate([np.asarray(leaf).reshape(*leaf.shape[:2], -1) for leaf in jax.tree_util.tree_leaves(j)],
                              axis=-1)

    explicit = np.einsum("nap,mbp->nmab", jac(x), jac(x2))
    np.testing.assert_allclose(kernel, explicit, rtol=1e-10, atol=1e-12)
    sym = curvature.empirical_ntk(f, params, x)
    np.testing.assert_allclose(sym, np.transpose(sym, (1, 0, 3, 2)), rtol=1e-10, atol=1e-12)


def test_gauss_newton_product_equals_the_explicit_form():
    apply, state, params, x, y, _ = _problem(5)

    def f(p, x):
        return apply(p, state, x)[0]

    def output_loss(logits):
        return jnp.mean(fn.softmax_cross_entropy(logits, y))

    flat, unravel = jax.flatten_util.ravel_pytree(params)
    v = normal(np.random.default_rng(6), flat.size)
    got = jax.flatten_util.ravel_pytree(curvature.gauss_newton_vp(f, output_loss, params, unravel(v), x))[0]
    jac = np.asarray(jax.jacrev(lambda w: f(unravel(w), x))(flat)).reshape(-1, flat.size)
    h_out = np.asarray(jax.hessian(lambda o: output_loss(o.reshape(4, 3)))(f(params, x).reshape(-1)))
    np.testing.assert_allclose(got, jac.T @ h_out @ jac @ np.asarray(v), rtol=1e-9, atol=1e-12)
