"""funcnn.verify.check_vjp: each check accepts a right rule and catches a rule that is wrong in its own way."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import funcnn as fn
from funcnn.verify import CHECKS, assert_vjp, check_vjp, default_rtol, primal_of, reference as ref
from funcnn.verify.primal import has_rules

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
    assert ("grad_of_grad", "arg[0]") in failed
    assert not any(arg == "arg[1]" for check, arg in failed)  # dW's rule is right: no row of arg[1] fails
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
    with pytest.raises(TypeError, match="holds no hand-written rule"):
        primal_of(jnp.sin)(x)


def test_primal_of_rebuilds_checkpoint_and_loops_by_structure_whatever_jax_names_them():
    """jax.checkpoint (remat2 on jax 0.10-0.12), a jit inside it, a fori_loop and a scan whose parameters changed
    between releases (num_consts on 0.10, ft_in on 0.12): each is rebuilt around its primal, so a funcnn op under
    them passes the forward and vjp rows."""
    rng = np.random.default_rng(3)
    x, w = normal(rng, 2, 6, 6, 3), normal(rng, 3, 3, 3, 4)

    def net(x, w):
        y = jax.checkpoint(lambda x, w: jax.jit(fn.relu)(fn.conv2d(x, w, padding="SAME")))(x, w)
        y = lax.fori_loop(0, 2, lambda i, y: fn.relu(y) * 0.5, y)
        y, _ = lax.scan(lambda c, _: (fn.max_pool2d(c, 1) + c, None), y, None, length=2)
        return y

    assert_vjp(net, x, w, checks=("forward", "vjp"))
    primal = primal_of(net)
    assert has_rules(jax.make_jaxpr(net)(x, w))
    assert not has_rules(jax.make_jaxpr(primal)(x, w))  # no rule left at any depth
    np.testing.assert_allclose(primal(x, w), net(x, w), rtol=1e-12)


def test_every_funcnn_primitive_checks_against_its_own_primal():
    rng = np.random.default_rng(10)
    x, w = normal(rng, 2, 7, 6, 3), normal(rng, 3, 3, 3, 4)
    assert_vjp(lambda x, w: fn.conv2d(x, w, stride=2, padding="SAME"), x, w, checks=("forward", "vjp"))
    assert_vjp(lambda x: fn.lp_pool2d(x, 3.0, 2), x, checks=("forward", "vjp", "finite_differences"))


def test_gradcheck_alias_keeps_the_old_signature():
    """funcnn.gradcheck still runs for one release (it warns on import: tests/verify/test_sweep.py)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from funcnn.gradcheck import check_vjp as old_check

    rng = np.random.default_rng(11)
    x, w = normal(rng, 1, 6, 6, 2), normal(rng, 3, 3, 2, 2)
    good = old_check(_conv_with_rule(flip=True), ref.conv2d, x, w)
    assert good.ok and {a.name for a in good.arguments} == {"arg[0]", "arg[1]"}
    bad = old_check(_conv_with_rule(flip=False), ref.conv2d, x, w)
    assert not bad.arguments[0].ok and bad.arguments[1].ok
    assert bad.arguments[0].rel_vs_reference > 0.1 and bad.arguments[0].rel_vs_fd > 0.1
    assert old_check(_conv_with_rule(flip=True), ref.conv2d, x, w, fd=False).worst_rel_vs_fd is None


# ---------------------------------------------------------------------------------------------------------------
# forward mode and the newer rows: each catches a rule that is wrong in its own way


def test_a_wrong_custom_jvp_fails_the_forward_and_reverse_rows():
    @jax.custom_jvp
    def cube(x):
        return x**3

    cube.defjvp(lambda primals, tangents: (cube(primals[0]), 2 * primals[0] ** 2 * tangents[0]))  # 3x^2, not 2x^2
    report = check_vjp(cube, normal(np.random.default_rng(12), 5))
    assert report.reference.startswith("f's primal")
    assert {"jvp", "vjp", "finite_differences", "jvp_finite_differences"} <= {r.check for r in report.failures}
    assert all(r.ok for r in report.rows if r.check == "adjoint")  # JAX transposes the same (wrong) linear map


def _toy_op(name, transpose_scale=1.0, dtype=None, batch=None, outputs=1):
    """A linear carrier op y = 2 x (and, with outputs=2, a second output 3 x) with a deliberately mistaken rule. The
    one-output op is its own transpose (the backward applies the op), so its batching rule is met in reverse mode
    too."""
    from funcnn.primitives import carrier

    def impl(x):
        return (2 * x, 3 * x) if outputs == 2 else 2 * x

    def transpose(cts, x):
        if outputs == 2:
            g2, g3 = cts
            return (2 * g2 + 3 * g3,)  # a symbolic-zero cotangent (None) breaks this sum
        out = op(cts) * transpose_scale
        return (out.astype(dtype) if dtype else out,)

    op = carrier.define(f"test_{name}", impl, linear=(0,), transpose=transpose, batch=batch,
                        multiple_results=outputs == 2)
    return op


def test_the_adjoint_row_catches_a_tangent_and_a_backward_that_disagree():
    op = _toy_op("adjoint", transpose_scale=1.5)
    report = check_vjp(lambda x: op(x), normal(np.random.default_rng(13), 4), reference=lambda x: 2 * x)
    failed = {r.check for r in report.failures}
    assert "adjoint" in failed and "vjp" in failed and "jvp" not in failed


def test_the_symbolic_zeros_row_catches_a_backward_that_mishandles_a_missing_cotangent():
    op = _toy_op("zeros", outputs=2)
    report = check_vjp(lambda x: op(x), normal(np.random.default_rng(14), 4), reference=lambda x: (2 * x, 3 * x))
    row = next(r for r in report.rows if r.check == "symbolic_zeros")
    assert not row.ok and "TypeError" in row.note
    assert all(r.ok for r in report.rows if r.check == "vjp")  # with both cotangents given, the rule is right


def test_the_dtype_row_catches_a_gradient_of_another_dtype():
    op = _toy_op("dtype", dtype=jnp.float64)
    report = check_vjp(lambda x: op(x), normal(np.random.default_rng(15), 4, dtype=jnp.float32),
                       reference=lambda x: 2 * x)
    row = next(r for r in report.rows if r.check == "dtype")
    assert not row.ok and "VJP float64 for input float32" in row.note


def test_the_vmap_rows_catch_a_wrong_batching_rule():
    def batch(op, args, dims):  # forgets to move the mapped axis: claims it at axis 1
        return op(*args), 1

    op = _toy_op("batch", batch=batch)
    report = check_vjp(lambda x: op(x), normal(np.random.default_rng(16), 2, 3), reference=lambda x: 2 * x)
    failed = {r.check for r in report.failures}
    assert {"vmap", "vmap_tangents", "vmap_cotangents"} <= failed and "vjp" not in failed


def test_a_row_that_compared_only_zeros_says_so():
    x = normal(np.random.default_rng(17), 1, 6, 6, 2)
    report = check_vjp(lambda x: fn.max_pool2d(x, 2), x, checks=("grad_of_grad", "hvp"))
    assert report.ok and {r.check for r in report.vacuous} == {"grad_of_grad", "hvp"}
    assert all(r.verdict == "zeros" for r in report.vacuous) and "zeros" in str(report)
    nan = check_vjp(lambda x: fn.relu(x) * jnp.nan, jnp.ones(3), checks=("jit",))
    assert nan.ok and nan.rows[0].verdict == "NaN"


def test_forward_mode_rows_are_skipped_for_a_custom_vjp_with_a_note():
    report = check_vjp(_conv_with_rule(flip=True), normal(np.random.default_rng(18), 1, 5, 5, 1),
                       normal(np.random.default_rng(19), 3, 3, 1, 1))
    skipped = [r for r in report.rows if r.skipped and "custom_vjp" in r.note]
    assert {r.check for r in skipped} == {"jvp", "jvp_finite_differences", "adjoint", "hvp", "vmap_tangents"}
    assert report.ok and all(r.verdict == "skip" for r in skipped)
    others = {r.check: r.note for r in report.rows if r.skipped and "custom_vjp" not in r.note}
    assert others == {"symbolic_zeros": "one output: nothing to leave out"}  # skipped for its own reason


def test_a_check_that_raises_is_a_failing_row_naming_the_error():
    @jax.custom_vjp
    def f(x):
        return 2 * x

    f.defvjp(lambda x: (2 * x, None), lambda _, g: (2 * g, 2 * g))  # one cotangent too many
    report = check_vjp(f, jnp.ones(3), checks=("vjp",))
    assert not report.ok and report.rows[0].argument == "-" and "Error" in report.rows[0].note


def test_the_checkers_own_arguments_are_checked():
    x = jnp.ones(3)
    for kwargs, message in [(dict(rtol=-1), "rtol must be a finite number >= 0"),
                            (dict(fd_rtol=float("nan")), "fd_rtol must be a finite number"),
                            (dict(hlo_platforms=("banana",)), "hlo_platforms: unknown platform 'banana'"),
                            (dict(fd_eps=0), "fd_eps must be a number in"),
                            (dict(fd_directions=0), "fd_directions must be an int >= 1"),
                            (dict(checks="vjp"), "checks must be a sequence of names")]:
        with pytest.raises((ValueError, TypeError), match=message):
            check_vjp(fn.relu, x, **kwargs)
    with pytest.raises(TypeError, match="f must be a function, got str"):
        check_vjp("relu", x)
    with pytest.raises(TypeError, match=r"arg\[0\] must be an array \(or a number\), got str"):
        check_vjp(fn.relu, "abc")
    with pytest.raises(ValueError, match=r"the reference's output \[\(4,\)\] does not match f's \[\(3,\)\]"):
        check_vjp(fn.relu, x, reference=lambda x: jnp.ones(4))


def test_a_rule_with_nondiff_argnums_is_checked_called_the_natural_way():
    """check_vjp(f, x, 2) for f = custom_vjp(nondiff_argnums=(1,)): the int stays a Python int (JAX forbids tracers
    there), f's primal is the reference, a right rule passes and a wrong one fails."""
    import functools

    def scale_with(factor):
        @functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
        def scale(x, k):
            return x * k

        scale.defvjp(lambda x, k: (x * k, None), lambda k, res, g: (g * k * factor,))
        return scale

    x = normal(np.random.default_rng(21), 3)
    right = check_vjp(scale_with(1), x, 2)
    assert right.ok and {r.check for r in right.rows if not r.skipped} >= {"forward", "vjp", "finite_differences"}
    wrong = check_vjp(scale_with(3), x, 2, checks=("vjp", "finite_differences"))
    assert {r.check for r in wrong.failures} == {"vjp", "finite_differences"}


# ----------------------------------------------------------------------------------------------------------------
# no false alarms where researchers work (issue 37): kinks, ties, hidden kinks, dtypes, attribution


def test_a_correct_rule_at_its_kink_passes_every_reference_row():
    """ReLU at an exact 0: the derivative is not defined there, the rule's choice (0) and the primal's autodiff
    differ, and both are right. The reference rows run again off the kink, as the finite differences do. Before,
    check_vjp(fn.relu, [0, 1, -2, .5]) failed its vjp and jvp rows."""
    report = check_vjp(fn.relu, jnp.array([0.0, 1.0, -2.0, 0.5]))
    assert report.ok, str(report)
    for check in ("vjp", "jvp"):
        assert "1 entries moved off kinks/ties" in _rows(report, check)[0].note
    unmoved = check_vjp(fn.relu, jnp.array([0.0, 1.0, -2.0, 0.5]), checks=("vjp",), kinks=False)
    assert not unmoved.ok  # the disagreement at the kink is real; only the comparison's point moved


def test_a_wrong_rule_still_fails_off_its_kink():
    @jax.custom_vjp
    def relu(x):
        return jnp.maximum(x, 0)

    relu.defvjp(lambda x: (relu(x), x), lambda x, g: (g * (x > 0) * 1.5,))  # 1.5 where it should be 1
    report = check_vjp(relu, jnp.array([0.0, 1.0, -2.0, 0.5]), reference=lambda x: jnp.maximum(x, 0))
    assert "vjp" in {r.check for r in report.failures}


def test_a_lenet5_loss_on_real_digits_passes(digits_batch):
    """A third of the pixels exactly 0 and zero biases: kinks at the input and hidden ReLU inputs a step from 0.
    Before, the vjp and jvp rows failed at the kinks, the finite differences on straddled hidden kinks (the input
    directions: ~40 hidden ReLU inputs within a step of 0 along each), and the jvp row of a bias whose JVP cancels
    to 2e-3 on float32 rounding (now relative to |J^T v| |u|, the size of the products it sums)."""
    model, params, state, x, y = digits_batch

    def loss(params, x):
        return jnp.mean(fn.softmax_cross_entropy(model.apply(params, state, x)[0], y))

    report = check_vjp(loss, params, x, checks=("forward", "vjp", "jvp", "finite_differences",
                                                "jvp_finite_differences"))
    assert report.ok, str(report)
    fd = [r for r in report.rows if r.check == "finite_differences" and r.argument == "arg[1]"][0]
    assert not fd.skipped and "straddled a kink" in fd.note


@pytest.fixture(scope="module")
def digits_batch():
    from funcnn import data, models

    ds = data.digits()
    model = models.lenet5(10)
    _, params, state = model.init(jax.random.PRNGKey(0), (1, 32, 32, 1))
    x, y = jnp.asarray(ds.train.x[:4]), jnp.asarray(ds.train.y[:4])
    assert float(jnp.mean(x == 0)) > 0.25 and not any(np.any(params[k]["b"]) for k in params if "b" in params[k])
    return model, params, state, x, y


def test_a_model_under_layers_remat_and_jax_checkpoint_checks_against_its_primal():
    """checkpoint / remat under whatever name this JAX gives it (remat2 on 0.10.2): forward and vjp rows pass."""
    from funcnn import layers as L

    model = L.remat(L.serial(L.Conv(4, 3, padding="SAME"), L.Relu(), L.MaxPool(2)))
    _, params, state = model.init(jax.random.PRNGKey(1), (2, 6, 6, 3))
    x = normal(np.random.default_rng(2), 2, 6, 6, 3)
    assert_vjp(lambda p, x: model.apply(p, state, x)[0], params, x, checks=("forward", "vjp", "jvp"))
    assert_vjp(jax.checkpoint(lambda x: fn.relu(fn.conv2d(x, params[next(iter(params))]["w"]))), x,
               checks=("forward", "vjp", "jvp"))


def test_a_float64_reference_of_a_float32_op_is_cast_up_front():
    """Before, every row failed with JAX's dtype error (x64 on, as in the tests)."""
    x = normal(np.random.default_rng(3), 5, dtype=jnp.float32)
    report = check_vjp(fn.tanh, x, reference=lambda x: jnp.tanh(x.astype(jnp.float64)))
    assert report.ok, str(report)
    assert "float64 outputs cast to f's float32" in report.reference


def test_each_row_is_attributed_to_the_argument_it_measures():
    """A rule wrong only in arg[1]: every row of arg[0] passes, the hvp's cross blocks fail on their own row (before,
    the hvp row of arg[0] failed too)."""
    @jax.custom_jvp
    def f(x, y):
        return jnp.sin(x) * y

    f.defjvp(lambda p, t: (f(*p), jnp.cos(p[0]) * p[1] * t[0] + jnp.sin(p[0]) * p[1] * t[1]))  # y dy: wrong
    rng = np.random.default_rng(4)
    report = check_vjp(f, normal(rng, 3), normal(rng, 3), reference=lambda x, y: jnp.sin(x) * y)
    assert all(r.ok for r in report.rows if r.argument == "arg[0]")
    assert {r.check for r in report.failures if r.argument == "arg[1]"} >= {"vjp", "jvp", "finite_differences"}
    assert [r.argument for r in report.failures if r.check == "hvp"] == ["arg[0] x arg[1]"]


def test_the_symbolic_zeros_row_names_the_output_and_a_broken_bwd_spares_the_forward_row():
    @jax.custom_vjp
    def two(x):
        return jnp.sin(x), jnp.cos(x)

    two.defvjp(lambda x: (two(x), x), lambda x, g: (g[0] * jnp.cos(x) + g[1] * jnp.sin(x),))  # output 1's sign
    report = check_vjp(two, normal(np.random.default_rng(5), 3))
    row = _rows(report, "symbolic_zeros")[0]
    assert not row.ok and "worst: output 1" in row.note
    assert [r.argument for r in _rows(report, "forward")] == ["output 0", "output 1"]  # each output its own row

    @jax.custom_vjp
    def broken(x):
        return jnp.sin(x)

    broken.defvjp(lambda x: (jnp.sin(x), x), lambda x, g: (g * jnp.cos(x), g))  # two cotangents for one input
    report = check_vjp(broken, normal(np.random.default_rng(6), 3))
    assert _rows(report, "forward")[0].ok  # before, the bwd's error failed the forward row too
    assert not _rows(report, "vjp")[0].ok and "TypeError" in _rows(report, "vjp")[0].note


def test_the_checker_at_an_empty_batch_passes_and_says_nothing_was_compared():
    """N = 0: every row passes and says "empty" where it compared nothing (before, the finite-difference row failed
    with NumPy's reshape error)."""
    report = check_vjp(lambda a: fn.conv2d(a, jnp.ones((3, 3, 3, 2))), jnp.ones((0, 6, 6, 3)))
    assert report.ok, str(report)
    assert {r.verdict for r in report.rows if r.check in ("forward", "vjp", "jvp", "vmap")} == {"empty"}
