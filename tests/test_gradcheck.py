"""funcnn.gradcheck: catches wrong rules, accepts right ones, handles pytrees, and the command-line sweep."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import funcnn as fn
from funcnn import gradcheck, reference as ref
from funcnn.gradcheck import check_vjp

from .helpers import normal


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


def test_a_correct_rule_passes_and_a_missing_flip_fails():
    rng = np.random.default_rng(0)
    x, w = normal(rng, 1, 6, 6, 2), normal(rng, 3, 3, 2, 2)
    good = check_vjp(_conv_with_rule(flip=True), ref.conv2d, x, w)
    assert good.ok, str(good)
    bad = check_vjp(_conv_with_rule(flip=False), ref.conv2d, x, w)
    assert not bad.ok
    assert not bad.arguments[0].ok and bad.arguments[1].ok  # dX is wrong, dW is right
    assert bad.arguments[0].rel_vs_reference > 0.1 and bad.arguments[0].rel_vs_fd > 0.1
    with pytest.raises(AssertionError, match="FAIL"):
        bad.raise_if_failed()
    assert "arg[0]" in str(bad) and "NO" in str(bad)


def test_finite_differences_alone_catch_a_wrong_rule():
    @jax.custom_vjp
    def square(x):
        return x**2

    square.defvjp(lambda x: (x**2, x), lambda x, g: (g * x,))  # forgot the factor 2
    x = normal(np.random.default_rng(1), 5)
    report = check_vjp(square, None, x)
    assert not report.ok and report.arguments[0].rel_vs_fd > 0.4 and report.forward_rel is None


def test_pytree_arguments_and_fixed_integer_leaves():
    rng = np.random.default_rng(2)
    params = {"w": normal(rng, 4, 3), "b": normal(rng, 3)}
    x, labels = normal(rng, 5, 4), jnp.array([0, 1, 2, 1, 0])

    def loss(params, x, labels):
        return fn.softmax_cross_entropy(fn.dense(x, params["w"], params["b"]), labels)

    def loss_ref(params, x, labels):
        return ref.softmax_cross_entropy(ref.dense(x, params["w"], params["b"]), labels)

    report = check_vjp(loss, loss_ref, params, x, labels)
    assert report.ok, str(report)
    assert sorted(a.name for a in report.arguments) == ["arg[0]['b']", "arg[0]['w']", "arg[1]"]


def test_directional_mode_and_float32_inputs():
    rng = np.random.default_rng(3)
    x = normal(rng, 2, 12, 12, 3, dtype=jnp.float32)
    report = check_vjp(lambda x: fn.max_pool2d(x, 3, 2), lambda x: ref.max_pool2d(x, 3, 2), x, fd_mode="directional")
    assert report.ok and report.fd_mode == "directional", str(report)
    assert report.rtol == gradcheck.default_rtol(jnp.float32)
    with pytest.raises(ValueError, match="fd_mode"):
        check_vjp(fn.relu, None, x, fd_mode="sideways")


def test_sweep_reports_and_fails_on_a_wrong_rule(monkeypatch, capsys):
    assert gradcheck.main(["--primitive", "dense", "--primitive", "relu"]) == 0
    table = capsys.readouterr().out
    assert "dense" in table and "relu" in table and "NO" not in table

    def broken_cases(seed=0):
        @jax.custom_vjp
        def double(x):
            return 2 * x

        double.defvjp(lambda x: (2 * x, None), lambda _, g: (3 * g,))
        yield gradcheck.Case("double", "broken", double, lambda x: 2 * x, (jnp.ones(3),))

    monkeypatch.setattr(gradcheck, "_cases", broken_cases)
    assert gradcheck.main([]) == 1
    assert "FAILED double" in capsys.readouterr().out


def test_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "funcnn.gradcheck", "--primitive", "global_avg_pool2d"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "global_avg_pool2d" in result.stdout


@pytest.mark.slow
def test_full_sweep_passes():
    assert gradcheck.main([]) == 0
