"""funcnn.verify.check_vjp: each check accepts a right rule and catches a rule that is wrong in its own way."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import funcnn as fn
from funcnn.verify import CHECKS, assert_vjp, check_vjp, default_rtol, primal_of, reference as ref

from ..helpers import normal


def _conv_with_rule(flip: bool):
    """A stride-1 VALID conv2d with a hand-written dX; flip=False forgets the lecture's kernel flip."""

    @jax.custom_vjp
    def conv(x, w):
        return ref.conv2d(x, w)

    def fwd(x, w):
        return conv(x, w), (x, w)

    def bwd(res, g):
        x, w = res
        k = w.shape[0]
        w_t = jnp.swapaxes(jnp.flip(w, (0, 1)) if flip else w, 2, 3)
        dx = lax.conv_general_dilated(g, w_t, (1, 1), [(k - 1, k - 1)] * 2,
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))
        dw = jax.vjp(lambda w: ref.conv2d(x, w), w)[1](g)[0]
        return dx, dw

    conv.defvjp(fwd, bwd)
    return conv


def _rows(report, check):
    return [r for r in report.rows if r.check == check]


def test_a_correct_rule_passes_every_check_without_a_reference():
    rng = np.random.default_rng(0)
    x, w = normal(rng, 1, 6, 6, 2), normal(rng, 3, 3, 2, 2)
    report = check_vjp(_conv_with_rule(flip=True), x, w)
    assert report.ok, str(report)
    assert report.reference.startswith("f's primal")
    assert report.checks == [c for c in CHECKS if c != "no_scatter"]


def test_a_missing_flip_fails_and_the_report_says_where():
    rng = np.random.default_rng(0)
    x, w = normal(rng, 1, 6, 6, 2), normal(rng, 3, 3, 2, 2)
    bad = check_vjp(_conv_with_rule(flip=False), x, w)
    assert not bad.ok
    failed = {(r.check, r.argument) for r in bad.failures}
    assert ("vjp", "arg[0]") in failed and ("finite_differences", "arg[0]") in failed
    assert not any(arg == "arg[1]" for check, arg in failed if check != "grad_of_grad")  # dW is right (its
    # second derivatives go through the wrong dX, so grad_of_grad fails for both)
    row = next(r for r in bad.failures if r.check == "vjp")
    assert row.rel_err > 0.1 and len(row.index) == 4 and row.got != row.want
    text = str(bad)
    assert "FAIL: vjp, finite_differences" in text and "NO" in text
    with pytest.raises(AssertionError, match="VJP check failed"):
        assert_vjp(_conv_with_rule(flip=False), x, w)
    with_reference = check_vjp(_conv_with_rule(flip=False), x, w, reference=ref.conv2d)
    assert with_reference.reference == "given" and not with_reference.ok


def test_finite_differences_alone_catch_a_wrong_rule():
    @jax.custom_vjp
    def square(x):
        return x**2

    square.defvjp(lambda x: (x**2, x), lambda x, g: (g * x,))  # forgot the factor 2
    x = normal(np.random.default_rng(1), 5)
    report = check_vjp(square, x, checks=("finite_differences",))
    assert not report.ok and report.worst("finite_differences") > 0.4 and report.forward_rel is None


def test_grad_of_grad_catches_a_rule_that_is_right_only_to_first_order():
    @jax.custom_vjp
    def sin(x):
        return jnp.sin(x)

    sin.defvjp(lambda x: (jnp.sin(x), x), lambda x, g: (g * lax.stop_gradient(jnp.cos(x)),))
    x = normal(np.random.default_rng(2), 6)
    report = check_vjp(sin, x)
    assert {r.check for r in report.failures} == {"grad_of_grad"}, str(report)


def test_jit_check_catches_a_rule_that_differs_when_traced():
    @jax.custom_vjp
    def double(x):
        return 2 * x

    def bwd(_, g):
        return (2 * g if isinstance(g, jax.core.Tracer) else 3 * g,)

    double.defvjp(lambda x: (2 * x, None), bwd)
    report = check_vjp(double, normal(np.random.default_rng(3), 4), checks=("jit",))
    assert not report.ok and _rows(report, "jit")[0].rel_err == pytest.approx(1 / 3)


def test_determinism_check_catches_a_noisy_rule_and_nondet_tol_admits_it():
    @jax.custom_vjp
    def noisy(x):
        return x

    def bwd(_, g):
        noise = jax.pure_callback(lambda: np.random.default_rng().normal(size=(4,)) * 1e-9,
                                  jax.ShapeDtypeStruct((4,), g.dtype))
        return (g + noise,)

    noisy.defvjp(lambda x: (x, None), bwd)
    x = normal(np.random.default_rng(4), 4)
    report = check_vjp(noisy, x, checks=("determinism",))
    assert not report.ok and _rows(report, "determinism")[0].abs_err > 0
    assert check_vjp(noisy, x, checks=("determinism",), nondet_tol=1e-6).ok


def test_vmap_check_reports_a_rule_that_cannot_be_batched():
    @jax.custom_vjp
    def ident(x):
        return x

    def bwd(_, g):  # a host callback that declares no batching
        return (jax.pure_callback(lambda g: np.asarray(g), jax.ShapeDtypeStruct(g.shape, g.dtype), g),)

    ident.defvjp(lambda x: (x, None), bwd)
    report = check_vjp(ident, normal(np.random.default_rng(5), 3), checks=("vmap",))
    assert not report.ok and _rows(report, "vmap")[0].note


def test_no_scatter_audit_flags_a_scatter_in_the_rule():
    @jax.custom_vjp
    def gather(x):
        return x[jnp.array([0, 2, 2])]

    def bwd(_, g):
        return (jnp.zeros(4, g.dtype).at[jnp.array([0, 2, 2])].add(g),)

    gather.defvjp(lambda x: (gather(x), None), bwd)
    x = normal(np.random.default_rng(6), 4)
    flagged = check_vjp(gather, x, checks=(), hlo_platforms=("cuda",))
    assert not flagged.ok and "stablehlo.scatter" in flagged.rows[0].note
    clean = check_vjp(lambda x: fn.max_pool2d(x, 3, 2), normal(np.random.default_rng(7), 1, 7, 7, 2), checks=("vjp",),
                      hlo_platforms=("cuda",))
    assert clean.ok, str(clean)


def test_ties_and_kinks_are_moved_before_finite_differences():
    x = jnp.asarray([[0.0, 1.0, 1.0, -2.0], [3.0, 3.0, 0.0, 5.0]])
    report = check_vjp(fn.relu, x, checks=("finite_differences",))
    assert report.ok, str(report)
    assert "6 entries moved" in _rows(report, "finite_differences")[0].note
    unmoved = check_vjp(fn.relu, x, checks=("finite_differences",), kinks=False)
    assert not unmoved.ok  # central differences straddle ReLU's kink at 0


def test_pytree_arguments_and_fixed_integer_leaves():
    rng = np.random.default_rng(8)
    params = {"w": normal(rng, 4, 3), "b": normal(rng, 3)}
    x, labels = normal(rng, 5, 4), jnp.array([0, 1, 2, 1, 0])

    def loss(params, x, labels):
        return fn.softmax_cross_entropy(fn.dense(x, params["w"], params["b"]), labels)

    report = check_vjp(loss, params, x, labels)
    assert report.ok, str(report)
    assert sorted({r.argument for r in _rows(report, "vjp")}) == ["arg[0]['b']", "arg[0]['w']", "arg[1]"]


def test_float32_and_bfloat16_get_their_own_tolerances():
    rng = np.random.default_rng(9)
    x = normal(rng, 2, 12, 12, 3, dtype=jnp.float32)
    report = check_vjp(lambda x: fn.max_pool2d(x, 3, 2), x, fd_mode="directional")
    assert report.ok and report.fd_mode == "directional", str(report)
    assert report.rtol == default_rtol(jnp.float32) == 2e-5
    low = check_vjp(lambda x: fn.avg_pool2d(x, 2), x.astype(jnp.bfloat16), checks=("vjp", "jit"))
    assert low.ok and low.rtol == default_rtol(jnp.bfloat16) == 3e-2 and low.dtype == "bfloat16"
    assert default_rtol(jnp.float64) == 1e-9 and default_rtol(jnp.float16) == 5e-3
    strict = check_vjp(lambda x: fn.avg_pool2d(x, 2), x.astype(jnp.bfloat16), checks=("vjp",), rtol=0.0)
    assert strict.rtol == 0.0


def test_bad_options_are_named():
    x = jnp.ones(3)
    with pytest.raises(ValueError, match="fd_mode"):
        check_vjp(fn.relu, x, fd_mode="sideways")
    with pytest.raises(ValueError, match="unknown checks.*'speed'"):
        check_vjp(fn.relu, x, checks=("speed",))
    with pytest.raises(ValueError, match="no floating-point argument"):
        check_vjp(fn.relu, jnp.ones(3, int))


def test_no_custom_vjp_means_no_reference_but_the_other_checks_run():
    report = check_vjp(jnp.sin, jnp.linspace(0.1, 1.0, 5))
    assert report.reference.startswith("none") and report.ok
    assert "vjp" not in report.checks and "finite_differences" in report.checks


def test_primal_of_inlines_custom_vjps_under_jit_cond_and_scan():
    @jax.custom_vjp
    def f(x):
        return jnp.sin(x)

    f.defvjp(lambda x: (jnp.sin(x), x), lambda x, g: (g * 0.0,))  # a deliberately useless rule

    def wrapped(x):
        y = jax.jit(f)(x)
        y = lax.platform_dependent(y, cpu=f, default=jnp.sin)
        y, _ = lax.scan(lambda c, xi: (c + f(xi), None), y, x[None])
        return jnp.sum(y)

    x = jnp.linspace(0.1, 1.0, 4)
    assert float(jax.grad(wrapped)(x)[0]) == 0.0  # the rule
    primal = primal_of(wrapped)
    np.testing.assert_allclose(primal(x), wrapped(x), rtol=1e-12)
    expected = jax.grad(lambda x: jnp.sum(jnp.sin(jnp.sin(x)) + jnp.sin(x)))(x)
    np.testing.assert_allclose(jax.grad(primal)(x), expected, rtol=1e-12)
    with pytest.raises(TypeError, match="calls no jax.custom_vjp"):
        primal_of(jnp.sin)(x)


def test_every_funcnn_primitive_checks_against_its_own_primal():
    rng = np.random.default_rng(10)
    x, w = normal(rng, 2, 7, 6, 3), normal(rng, 3, 3, 3, 4)
    assert_vjp(lambda x, w: fn.conv2d(x, w, stride=2, padding="SAME"), x, w, checks=("forward", "vjp"))
    assert_vjp(lambda x: fn.lp_pool2d(x, 3.0, 2), x, checks=("forward", "vjp", "finite_differences"))


def test_gradcheck_alias_keeps_the_old_signature():
    from funcnn.gradcheck import check_vjp as old_check

    rng = np.random.default_rng(11)
    x, w = normal(rng, 1, 6, 6, 2), normal(rng, 3, 3, 2, 2)
    good = old_check(_conv_with_rule(flip=True), ref.conv2d, x, w)
    assert good.ok and {a.name for a in good.arguments} == {"arg[0]", "arg[1]"}
    bad = old_check(_conv_with_rule(flip=False), ref.conv2d, x, w)
    assert not bad.arguments[0].ok and bad.arguments[1].ok
    assert bad.arguments[0].rel_vs_reference > 0.1 and bad.arguments[0].rel_vs_fd > 0.1
    assert old_check(_conv_with_rule(flip=True), ref.conv2d, x, w, fd=False).worst_rel_vs_fd is None
