"""The carrier: the JAX API it needs is there (a clear failure when JAX moves it), and the fallback form (the same
rules as jax.custom_vjp, reverse mode only) works and says so once."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np

import funcnn as fn
from funcnn.primitives import carrier

from ..helpers import normal


def _resolve(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(__import__(module, fromlist=[name]), name)


# JAX names funcnn reads outside the carrier and the checker: the tracer type its argument checks skip, the jaxpr
# walk of `funcnn summary --paths`, export and the multi-process helpers
OTHER_API = ("jax.core.Tracer", "jax.extend.core.jaxprs_in_params", "jax.export.export", "jax.export.deserialize",
             "jax.experimental.multihost_utils.process_allgather", "jax.experimental.multihost_utils.broadcast_one_to_all")


def test_the_jax_api_funcnn_carries_and_checks_its_rules_on_is_present():
    """Fails, naming what moved, when a JAX in the pinned range lacks a name the carrier registers rules with, the
    checker reads jaxprs with, or another funcnn module uses."""
    from funcnn.verify.primal import REQUIRED_API as CHECKER_API

    missing = []
    for dotted in (*carrier.REQUIRED_API, *CHECKER_API, *OTHER_API):
        try:
            _resolve(dotted)
        except (ImportError, AttributeError) as err:
            missing.append(f"{dotted} ({type(err).__name__}: {err})")
    assert not missing, (f"jax {jax.__version__} moved the API funcnn uses: {missing}; see "
                         "funcnn/primitives/carrier.py (REQUIRED_API), funcnn/verify/primal.py and pin or port")
    assert carrier.MODE == "primitive", f"funcnn fell back to custom_vjp: {carrier.FALLBACK_REASON}"
    assert all(op.primitive is not None for op in carrier.OPS.values())


def test_the_pinned_jax_range_is_the_carriers_and_holds_the_installed_jax():
    """pyproject.toml pins jax and jaxlib to carrier.TESTED_JAX, and the JAX under test is inside it."""
    import pathlib
    import re

    import jaxlib

    text = (pathlib.Path(__file__).parents[2] / "pyproject.toml").read_text()
    for name in ("jax", "jaxlib"):
        pinned = re.search(rf'"{name}([<>=!,.0-9]+)"', text)
        assert pinned and pinned.group(1) == carrier.TESTED_JAX, (name, pinned and pinned.group(1))
    floor, ceiling = re.fullmatch(r">=([\d.]+),<([\d.]+)", carrier.TESTED_JAX).groups()
    version = lambda v: tuple(int(p) for p in re.findall(r"\d+", v)[:3])  # noqa: E731
    for installed in (jax.__version__, jaxlib.__version__):
        assert version(floor) <= version(installed) < version(ceiling), (installed, carrier.TESTED_JAX)


_FALLBACK = textwrap.dedent("""
    import json, sys, warnings
    warnings.simplefilter("always")
    with warnings.catch_warnings(record=True) as caught:
        import jax, jax.numpy as jnp
        jax.config.update("jax_enable_x64", True)
        import funcnn as fn
        from funcnn.primitives import carrier
        fn.conv2d  # every family imported
    x, w = jnp.asarray(json.loads(sys.argv[1])), jnp.asarray(json.loads(sys.argv[2]))
    def loss(x, w):
        z = fn.max_pool2d(fn.relu(fn.conv2d(x, w, padding=1)), 2)
        y = fn.group_norm(z, 2)
        return jnp.sum(fn.log_softmax(fn.dense(y.reshape(2, -1), jnp.ones((y.size // 2, 3)))))
    grads = jax.grad(loss, (0, 1))(x, w)
    second = jax.grad(lambda w: jnp.sum(jax.grad(loss)(x, w) ** 2))(w)
    def error_of(transform):
        try:
            transform()
        except TypeError as err:
            return str(err)
    error = error_of(lambda: jax.jvp(lambda x: fn.conv2d(x, w), (x,), (x,)))
    # forward mode reaching an op inside a backward rule (before: JAX's raw "can't apply forward-mode autodiff")
    others = [error_of(lambda: jax.hessian(lambda x: loss(x, w))(x[:1, :3, :3])),
              error_of(lambda: fn.curvature.hvp(lambda w: loss(x, w), w, w))]
    print(json.dumps({"mode": carrier.MODE, "warnings": [str(c.message) for c in caught
                      if "funcnn" in str(c.message)], "grads": [g.tolist() for g in grads],
                      "second": second.tolist(), "error": error, "others": others}))
""")


def test_the_fallback_form_runs_the_same_rules_in_reverse_mode_only():
    rng = np.random.default_rng(0)
    x, w = normal(rng, 2, 6, 6, 3), normal(rng, 3, 3, 3, 4)
    env = {**os.environ, "FUNCNN_CARRIER": "custom_vjp", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", _FALLBACK, json.dumps(np.asarray(x).tolist()),
                          json.dumps(np.asarray(w).tolist())], env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["mode"] == "custom_vjp"
    assert len(result["warnings"]) == 1 and "reverse mode only" in result["warnings"][0]

    def loss(x, w):
        z = fn.max_pool2d(fn.relu(fn.conv2d(x, w, padding=1)), 2)
        y = fn.group_norm(z, 2)
        return jnp.sum(fn.log_softmax(fn.dense(y.reshape(2, -1), jnp.ones((y.size // 2, 3)))))

    for got, want in zip(result["grads"], jax.grad(loss, (0, 1))(x, w)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(result["second"], jax.grad(lambda w: jnp.sum(jax.grad(loss)(x, w) ** 2))(w),
                               rtol=1e-10, atol=1e-13)
    assert "funcnn.conv2d runs as a jax.custom_vjp" in result["error"] and "FUNCNN_CARRIER" in result["error"]
    for other in result["others"]:
        assert other is not None and "runs as a jax.custom_vjp on this JAX" in other and "FUNCNN_CARRIER" in other


def test_a_deprecation_raised_from_a_funcnn_module_fails_the_tests():
    """pyproject.toml's filterwarnings: a JAX deprecation that funcnn's own code triggers (attributed to the funcnn
    module that called the old name) is an error in the test suite, so a rename is fixed before JAX removes it."""
    import warnings

    import pytest

    for category in (DeprecationWarning, FutureWarning):
        with pytest.raises(category):
            warnings.warn_explicit("jax.old_name is deprecated", category, carrier.__file__, 1,
                                   module="funcnn.primitives.carrier")
    with warnings.catch_warnings(record=True) as caught:  # another library's stays a warning
        warnings.warn_explicit("another library's deprecation", DeprecationWarning, "other.py", 1, module="other")
    assert [type(c.message) for c in caught] == [DeprecationWarning]
