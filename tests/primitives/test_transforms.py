"""Every JAX transform on every primitive: for each configuration registered in `funcnn.verify`, jax.jvp,
jax.jacfwd, jax.hessian (both over the first SLICE entries of each argument, so that the dense matrices stay small
at any shape), jax.linearize, forward-over-reverse and reverse-over-reverse Hessian-vector products,
grad-of-grad and (for the linear primitives) jax.linear_transpose, against the same transforms of the independent
literal reference (`funcnn.verify.reference`) differentiated by JAX; and the proof that reverse mode runs the
hand-written backward rules, not JAX's autodiff of the forward.

Each primitive's first configuration runs in CI; `pytest -m slow` adds every registered configuration.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnn as fn
from funcnn.describe import _equations
from funcnn.verify.registry import cases

from ..helpers import normal

# linear in each argument separately (the biases, when given, are set to zero for linear_transpose)
MULTILINEAR = {"conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "dense"}
LINEAR = {"avg_pool1d", "avg_pool2d", "global_avg_pool1d", "global_avg_pool2d", "adaptive_avg_pool1d",
          "adaptive_avg_pool2d"}


def _ids(selected):
    return [f"{c.primitive}-{i}" for i, c in enumerate(selected)]


def _first_per_primitive(selected, keep_all=("max_pool2d",)):
    """Each primitive's first case (every one of `keep_all`: max pooling's quick cases include the ties on purpose).
    The bounded sweep already checks every configuration's JVP, VJP and adjoint (`verify.sweep.CORE_CHECKS`); what
    this file adds is the higher-order transforms, which one configuration per primitive exercises."""
    seen, kept = set(), []
    for c in selected:
        if c.primitive in keep_all or c.primitive not in seen:
            kept.append(c)
            seen.add(c.primitive)
    return kept


EVERY = cases(full=True)
BOUNDED = _first_per_primitive(cases())
_KEPT = {(c.primitive, c.label) for c in BOUNDED}
EXTRA = [c for c in EVERY if (c.primitive, c.label) not in _KEPT]


def _differentiated(case):
    """(f, reference, primals): both as functions of the floating arguments, the others held fixed."""
    floating = [i for i, a in enumerate(case.args) if jnp.issubdtype(a.dtype, jnp.floating)]

    def over(fun):
        def g(*values):
            full = list(case.args)
            for i, v in zip(floating, values):
                full[i] = v
            return fun(*full)
        return g

    return over(case.f), over(case.reference), tuple(case.args[i] for i in floating)


SLICE = 48  # dense Jacobians and Hessians are taken over the first SLICE entries of each argument


def _sliced(fun, primals):
    """fun as a function of the first SLICE entries of each argument (the rest held at their values), and those
    entries: a dense Jacobian or Hessian of it is at most (outputs x 3 SLICE) or (3 SLICE)^2, whatever the shapes."""
    heads = tuple(p.reshape(-1)[:SLICE] for p in primals)

    def g(*new_heads):
        return fun(*[p.reshape(-1).at[: h.size].set(h).reshape(p.shape) for p, h in zip(primals, new_heads)])

    return g, heads


def _transforms(fun, primals, tangents, ct):
    """Every transform of `fun` at `primals`, in one compiled program: a dict of results."""
    argnums = tuple(range(len(primals)))

    def loss(*p):  # a nonlinear scalar of the output, so that second derivatives are not trivially zero
        return sum(jnp.sum(jnp.sin(o) * c) for o, c in zip(jax.tree_util.tree_leaves(fun(*p)),
                                                             jax.tree_util.tree_leaves(ct)))

    grad = jax.grad(loss, argnums)

    def run(primals, tangents):
        _, lin = jax.linearize(fun, *primals)
        sliced_fun, heads = _sliced(fun, primals)
        sliced_loss, _ = _sliced(loss, primals)
        return {
            "jvp": jax.jvp(fun, primals, tangents)[1],
            "jacfwd": jax.jacfwd(sliced_fun, argnums)(*heads),
            "linearize": lin(*tangents),
            "hessian": jax.hessian(sliced_loss, argnums)(*heads),
            "hvp_fwd_over_rev": jax.jvp(grad, primals, tangents)[1],
            "hvp_rev_over_rev": jax.grad(lambda *p: sum(jnp.vdot(a, t) for a, t in zip(grad(*p), tangents)),
                                         argnums)(*primals),
            "grad_of_grad": jax.grad(lambda *p: jnp.sum(jnp.sin(grad(*p)[0])), argnums)(*primals),
        }

    return jax.jit(run)(primals, tangents)


def _assert_close(got, want, what, rtol=1e-9):
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        scale = max(float(np.max(np.abs(b), initial=0.0)), 1e-300)
        err = float(np.max(np.abs(a - b), initial=0.0))
        assert err <= rtol * scale, f"{what}: max |got - want| = {err:.3e}, {err / scale:.3e} of max |want|"


def _check_case(case):
    f, ref, primals = _differentiated(case)
    rng = np.random.default_rng(0)
    tangents = tuple(normal(rng, *p.shape) for p in primals)
    ct = jax.tree_util.tree_map(lambda o: normal(rng, *o.shape), jax.eval_shape(f, *primals))
    got, want = _transforms(f, primals, tangents, ct), _transforms(ref, primals, tangents, ct)
    for name in got:
        _assert_close(got[name], want[name], f"{case.primitive} {case.label}: {name}")
    if case.primitive in MULTILINEAR | LINEAR:
        args = list(primals)
        if case.primitive in MULTILINEAR and len(args) == 3:
            args[2] = jnp.zeros_like(args[2])  # no bias: linear in x and in w
        for i in range(1 if case.primitive in LINEAR else 2):
            def along(v, fun, i=i):
                full = list(args)
                full[i] = v
                return fun(*full)

            out = jax.eval_shape(lambda v: along(v, f), args[i])
            g = normal(rng, *out.shape)
            transposed = jax.linear_transpose(lambda v: along(v, f), args[i])(g)
            want_t = jax.vjp(lambda v: along(v, ref), args[i])[1](g)
            _assert_close(transposed, want_t, f"{case.primitive} {case.label}: linear_transpose of argument {i}")


@pytest.mark.parametrize("case", BOUNDED, ids=_ids(BOUNDED))
def test_every_transform_equals_the_reference(case):
    _check_case(case)


@pytest.mark.slow
@pytest.mark.parametrize("case", EXTRA, ids=_ids(EXTRA))
def test_every_transform_equals_the_reference_every_configuration(case):
    _check_case(case)


@pytest.mark.parametrize("case", BOUNDED, ids=_ids(BOUNDED))
def test_an_empty_mapped_axis_under_every_transform(case):
    """vmap over a size-0 axis (every argument mapped), its grad, jvp and jacfwd, and jax.hessian where the first
    argument's batch axis is empty (N = 0: jax.hessian vmaps over an empty basis): empty results of the right shapes.
    Before, the batch rules folded the mapped axis into another and divided by its size (ZeroDivisionError in conv,
    every pool, border_pad, the norms and global pooling); max_unpool reshaped with -1 at N = 0."""
    f, _, primals = _differentiated(case)
    empty = [jnp.zeros((0, *p.shape), p.dtype) for p in primals]
    expected = jax.eval_shape(f, *primals)
    out = jax.vmap(f)(*empty)
    for o, e in zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(expected)):
        assert o.shape == (0, *e.shape)

    def total(*values):
        return sum(jnp.sum(o) for o in jax.tree_util.tree_leaves(f(*values)))

    grads = jax.vmap(jax.grad(total, argnums=tuple(range(len(primals)))))(*empty)
    assert [g.shape for g in grads] == [e.shape for e in empty]
    tangents = jax.vmap(lambda *v: jax.jvp(f, v, v)[1])(*empty)
    assert jax.tree_util.tree_structure(tangents) == jax.tree_util.tree_structure(out)
    x = primals[0]
    if x.ndim >= 2 and case.primitive not in ("batch_norm",):  # batch_norm needs an example: its own ValueError
        batchless = [x[:0], *primals[1:]]
        try:
            shapes = jax.eval_shape(f, *batchless)
        except ValueError:  # a configuration whose other arguments fix N (a loss's labels): nothing to sweep
            return
        hessian = jax.hessian(lambda a: total(a, *primals[1:]))(x[:0])
        assert hessian.shape == (*x[:0].shape, *x[:0].shape) and shapes is not None


def test_float32_transforms_within_float32_tolerance():
    """The same transforms in float32 (bounded to one conv, one pool, one norm) at the float32 tolerance."""
    rng = np.random.default_rng(1)
    x, w = normal(rng, 2, 7, 6, 4, dtype=jnp.float32), normal(rng, 3, 3, 4, 5, dtype=jnp.float32)
    for f, args in [(lambda x, w: fn.conv2d(x, w, stride=2, padding=1), (x, w)),
                    (lambda x: fn.max_pool2d(x, 3, 2, padding=1), (x,)), (lambda x: fn.group_norm(x, 2), (x,))]:
        ref = fn.verify.primal_of(f)
        tangents = tuple(normal(rng, *a.shape, dtype=jnp.float32) for a in args)
        ct = normal(rng, *jax.eval_shape(f, *args).shape, dtype=jnp.float32)
        got, want = _transforms(f, args, tangents, ct), _transforms(ref, args, tangents, ct)
        for name in got:
            _assert_close(got[name], want[name], f"float32 {name}", rtol=2e-5 if "hess" not in name else 1e-4)


# ---------------------------------------------------------------------------------------------------------------
# reverse mode runs the hand-written rules


def _primitives_in_grad(loss, *args):
    return [e.primitive.name for e in _equations(jax.make_jaxpr(jax.grad(loss))(*args).jaxpr)]


def test_reverse_mode_runs_the_hand_written_backward_rules():
    """jax.grad of a conv -> max pool -> batch norm network: its jaxpr holds the backward ops (the dX map, dW, the
    max pool's first-maximum placement, the norm's fused backward) and none of what JAX's own autodiff of their
    forwards would emit (a transposed lax convolution, select_and_scatter, a reduce_window's transpose)."""
    rng = np.random.default_rng(2)
    x, w = normal(rng, 2, 8, 8, 3), normal(rng, 3, 3, 3, 4)

    def loss(w):
        z = fn.max_pool2d(fn.relu(fn.conv2d(x, w, padding=1)), 2)
        y, _, _ = fn.batch_norm(z)
        return jnp.sum(fn.softmax_cross_entropy(y.reshape(2, -1)[:, :10], jnp.array([1, 2])))

    names = _primitives_in_grad(loss, w)
    for backward in ("funcnn.conv_dw", "funcnn.max_pool_backward", "funcnn.norm_backward"):
        assert backward in names, f"{backward} missing from the gradient's jaxpr: {sorted(set(names))}"
    for autodiff in ("conv_general_dilated", "select_and_scatter_add", "select_and_gather_add", "reduce_window",
                     "reduce_window_max", "reduce_window_sum", "scatter-add"):
        assert autodiff not in names, f"{autodiff} in the gradient's jaxpr: JAX differentiated a forward"
    dx_names = _primitives_in_grad(lambda x: jnp.sum(fn.conv2d(x, w, padding=1) ** 2), x)
    assert "funcnn.conv_transpose" in dx_names and "conv_general_dilated" not in dx_names


def test_make_jaxpr_shows_each_op_once_with_its_static_parameters():
    init, apply = fn.models.lenet5(10)
    _, params, state = init(jax.random.PRNGKey(0), (2, 32, 32, 1))
    closed = jax.make_jaxpr(lambda p, x: apply(p, state, x)[0])(params, jnp.zeros((2, 32, 32, 1)))
    ops = [e for e in _equations(closed.jaxpr) if e.primitive.name.startswith("funcnn.")]
    assert [e.primitive.name for e in ops] == ["funcnn.conv", "funcnn.relu", "funcnn.max_pool", "funcnn.conv",
                                               "funcnn.relu", "funcnn.max_pool", "funcnn.dense", "funcnn.relu",
                                               "funcnn.dense", "funcnn.relu", "funcnn.dense"]
    conv = ops[0].params
    assert conv["window"] == (5, 5) and conv["stride"] == (1, 1) and conv["padding"] == ((0, 0), (0, 0))
    assert conv["algorithm"] == "banded" and ops[2].params["window"] == (2, 2)
    assert "funcnn.conv[" in str(closed) and "algorithm=banded" in str(closed)
