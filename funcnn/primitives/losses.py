"""Losses: softmax cross-entropy with integer labels.

    L[n] = -log( exp(f[n, y_n]) / sum_j exp(f[n, j]) ) = logsumexp(f[n]) - f[n, y_n]

Tangent rule dL[n] = sum_j (softmax(f[n])_j - onehot(y_n)_j) df[n, j], which JAX transposes into the gradient
(lecture 000, softmax classifier): dL[n]/df[n, j] = g[n] (softmax(f[n])_j - onehot(y_n)_j). The labels are integers
and have no tangent.
Worked example: f = (-2.85, 0.86, 0.28), true class 3 (index 2) -> probabilities (0.016, 0.631, 0.353), L = 1.04.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from . import carrier
from .activations import stable_log_softmax
from .arguments import accumulation_dtype, as_array, as_float, names_forward_mode_error
from .cases import cases_for


def _impl(logits, labels):
    acc = accumulation_dtype(logits.dtype)
    log_p = stable_log_softmax(logits.astype(acc), -1)
    onehot = jax.nn.one_hot(labels, logits.shape[-1], dtype=acc)
    valid = (labels >= 0) & (labels < logits.shape[-1])
    loss = -jnp.sum(onehot * log_p, axis=-1)
    return jnp.where(valid, loss, jnp.nan).astype(logits.dtype)


def _tangent(args, loss, tangents):
    """dL[n] = sum_j (softmax(f[n])_j - onehot(y_n)_j) df[n, j]."""
    (logits, labels), df = args, tangents[0]
    acc = accumulation_dtype(logits.dtype)
    p = jnp.exp(stable_log_softmax(logits.astype(acc), -1))
    onehot = jax.nn.one_hot(labels, logits.shape[-1], dtype=acc)
    return jnp.sum((p - onehot) * df.astype(acc), axis=-1).astype(df.dtype)


def _batch(op, args, dims):
    """Logits (..., K) and labels (...) with any leading axes: the mapped axis first in both."""
    (logits, labels), _ = carrier.moved_to_front(args, dims)
    return op(logits, labels), 0


SOFTMAX_CROSS_ENTROPY = carrier.define("softmax_cross_entropy", _impl, tangent=_tangent, batch=_batch)


@names_forward_mode_error("softmax_cross_entropy")
def softmax_cross_entropy(logits, labels):
    """Per-example cross-entropy of softmax(logits) against integer labels: logits (..., K), labels (...) -> (...).

    A label outside [0, K) gives NaN for that example (checked eagerly when the labels are concrete).
    Tangent: sum_j (softmax(logits) - onehot(labels))_j dlogits_j; gradient: g (softmax(logits) - onehot(labels)).
    """
    logits = as_float("softmax_cross_entropy", "logits", logits)
    labels = as_array("softmax_cross_entropy", "labels", labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"softmax_cross_entropy: labels must be integers (class indices), got dtype {labels.dtype}")
    if logits.ndim < 1 or labels.shape != logits.shape[:-1]:
        raise ValueError(f"softmax_cross_entropy: labels shape {labels.shape} must equal logits shape {logits.shape} "
                         f"without its last (class) axis")
    if not isinstance(labels, jax.core.Tracer):
        concrete = np.asarray(labels)
        bad = (concrete < 0) | (concrete >= logits.shape[-1])
        if bad.any():
            raise ValueError(f"softmax_cross_entropy: labels must lie in [0, {logits.shape[-1]}), got "
                             f"{concrete[bad][:5].tolist()} for logits of shape {logits.shape}")
    return SOFTMAX_CROSS_ENTROPY(logits, labels)




@cases_for("softmax_cross_entropy")
def loss_cases(make, ref):

    yield make.case("softmax_cross_entropy", "(6, 5)", softmax_cross_entropy, ref.softmax_cross_entropy,
                    make.normal(6, 5), make.integers(0, 5, 6))
