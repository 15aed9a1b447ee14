"""The literal reference is independent of what it checks: it computes its own sizes and paddings, so a mistake in
the primitives' arithmetic cannot pass both (funcnn/verify/reference.py's module docstring promises this)."""

import ast
import pathlib

import jax.numpy as jnp
import numpy as np

import funcnn as fn
from funcnn.primitives import geometry
from funcnn.verify import reference as ref

from ..helpers import normal


def test_the_reference_imports_nothing_from_the_primitives():
    source = pathlib.Path(ref.__file__).read_text()
    names = {node.module or "" for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)}
    names |= {alias.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Import)
              for alias in node.names}
    assert not [n for n in names if "funcnn" in n or n.startswith(".")], names


def test_a_wrong_padding_rule_in_the_primitives_is_caught_by_the_reference(monkeypatch):
    """Swap the primitives' "SAME" split (the extra padding row at the start instead of the end): the reference,
    which splits by its own rule, no longer agrees with the primitive on an odd total."""
    rng = np.random.default_rng(0)
    x, w = normal(rng, 1, 6, 6, 1), normal(rng, 2, 2, 1, 1)  # K = 2: one padding row in total, an odd split
    np.testing.assert_allclose(fn.conv2d(x, w, padding="SAME"), ref.conv2d(x, w, padding="SAME"), rtol=1e-12)

    right = geometry.same_padding

    def swapped(in_size, k_eff, stride):
        lo, hi = right(in_size, k_eff, stride)
        return hi, lo

    monkeypatch.setattr(geometry, "same_padding", swapped)
    wrong = fn.conv2d(x, w, padding="SAME")
    assert wrong.shape == (1, 6, 6, 1)
    assert not jnp.allclose(wrong, ref.conv2d(x, w, padding="SAME"))
