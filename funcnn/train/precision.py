"""Mixed precision: parameters in float32, compute in bfloat16 (or float16), loss scaling where it is needed.

    policy = precision.Policy.get("bfloat16")            # params float32, compute bfloat16, outputs float32
    apply = precision.mixed_precision(model.apply, policy)
    step = train.make_train_step(apply, optimizer)         # gradients come back in float32, as the params

    # float16 has a narrow exponent range: small gradients underflow unless the loss is scaled up first
    optimizer = precision.loss_scaled(train.adam(), initial_scale=2.0**15)

    # both by a preset's name, as `funcnn train --precision NAME` does
    apply, optimizer = precision.with_precision("float16", model.apply, train.adam())

The primitives accumulate in float32 whatever their inputs (`preferred_element_type` in the convolutions and
dense layers, float32 reductions in the softmax and pools), so "compute in bfloat16" means bfloat16 operands and
activations with float32 sums. bfloat16 keeps float32's exponent range, so it needs no loss scaling; float16 does.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from .. import catalog


def _cast_floating(tree, dtype):
    return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(jnp.result_type(a), jnp.floating) else a, tree)


@dataclasses.dataclass(frozen=True)
class Policy:
    """Which dtype holds the parameters, which one the layers compute in, and which one the outputs come back in."""

    param_dtype: jnp.dtype = jnp.float32
    compute_dtype: jnp.dtype = jnp.float32
    output_dtype: jnp.dtype = jnp.float32

    PRESETS = catalog.PRECISIONS  # name -> (parameter, compute, output) dtypes

    @classmethod
    def get(cls, name: str) -> "Policy":
        """A preset by name: "float32", "bfloat16" (mixed) or "float16" (mixed; pair it with `loss_scaled`)."""
        if name not in cls.PRESETS:
            raise ValueError(f"unknown precision policy {name!r}; known: {', '.join(cls.PRESETS)}")
        return cls(*(jnp.dtype(d) for d in cls.PRESETS[name]))

    def cast_to_compute(self, tree):
        return _cast_floating(tree, self.compute_dtype)

    def cast_to_param(self, tree):
        return _cast_floating(tree, self.param_dtype)

    def cast_to_output(self, tree):
        return _cast_floating(tree, self.output_dtype)


def mixed_precision(apply: Callable, policy: Policy) -> Callable:
    """Wrap a layer's apply: floating params, state and inputs are cast to the compute dtype, the outputs to the
    output dtype and the new state back to the parameter dtype. Differentiating through the casts returns
    gradients in the parameters' own dtype (float32 master weights)."""

    def wrapped(params, state, x, **kwargs):
        y, new_state = apply(policy.cast_to_compute(params), policy.cast_to_compute(state),
                             policy.cast_to_compute(x), **kwargs)
        return policy.cast_to_output(y), policy.cast_to_param(new_state)

    return wrapped


def with_precision(name: str, apply: Callable, optimizer: optax.GradientTransformation):
    """`(apply, optimizer)` set up for a preset policy (`Policy.get(name)`): unchanged for "float32"; `apply`
    wrapped in `mixed_precision` otherwise, and the optimiser wrapped in `loss_scaled` (its defaults) when the
    policy computes in float16, whose narrow exponent range needs it."""
    policy = Policy.get(name)
    if policy == Policy():
        return apply, optimizer
    if policy.compute_dtype == jnp.float16:
        optimizer = loss_scaled(optimizer)
    return mixed_precision(apply, policy), optimizer


class LossScaleState(NamedTuple):
    inner_state: optax.OptState
    loss_scale: jnp.ndarray   # the factor the training step multiplies the loss by
    good_steps: jnp.ndarray   # finite steps since the scale last changed

    @property
    def hyperparams(self):
        """The wrapped optimiser's injected hyperparameters (so plateau rules and replica sweeps still reach the
        learning rate)."""
        return self.inner_state.hyperparams


def loss_scale(opt_state):
    """The factor a training step multiplies the loss by: the `loss_scale` of the one `loss_scaled` state inside
    `opt_state`, at any depth (`optax.chain(..., loss_scaled(opt))` or `loss_scaled` at the top), or None when the
    optimiser does no loss scaling. This is how `funcnn.train.make_train_step` finds it; a step of your own that
    pairs with `loss_scaled` differentiates `loss * loss_scale(opt_state)`.

    ValueError when opt_state holds more than one loss-scaled state (one loss cannot be multiplied by two
    scales)."""
    nodes = jax.tree.leaves(opt_state, is_leaf=lambda node: isinstance(node, LossScaleState))
    states = [node for node in nodes if isinstance(node, LossScaleState)]
    if len(states) > 1:
        raise ValueError(f"loss_scale: the optimiser state holds {len(states)} loss_scaled states; wrap the "
                         "optimiser in loss_scaled once")
    return states[0].loss_scale if states else None


def loss_scaled(optimizer: optax.GradientTransformation, initial_scale: float = 2.0**15, period: int = 2000,
                factor: float = 2.0, min_scale: float = 1.0) -> optax.GradientTransformation:
    """Dynamic loss scaling around an optax optimiser (Micikevicius et al. 2018).

    `funcnn.train.make_train_step` reads the scale with `loss_scale(opt_state)` (wherever this state sits inside
    the optimiser's, e.g. in an `optax.chain`) and differentiates loss * scale; this transform divides the
    gradients by the scale again. When any gradient is not finite the update is skipped (zeros) and
    the scale divided by `factor`; after `period` finite steps in a row it is multiplied by `factor`.
    """

    def init(params):
        return LossScaleState(optimizer.init(params), jnp.asarray(initial_scale, jnp.float32),
                              jnp.zeros((), jnp.int32))

    def update(grads, state, params=None):
        grads = jax.tree.map(lambda g: g / state.loss_scale.astype(g.dtype), grads)
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
        safe = jax.tree.map(lambda g: jnp.where(finite, g, jnp.zeros_like(g)), grads)
        updates, inner = optimizer.update(safe, state.inner_state, params)
        updates = jax.tree.map(lambda u: jnp.where(finite, u, jnp.zeros_like(u)), updates)
        inner = jax.tree.map(lambda new, old: jnp.where(finite, new, old), inner, state.inner_state)
        grow = finite & (state.good_steps + 1 >= period)
        scale = jnp.where(finite, jnp.where(grow, state.loss_scale * factor, state.loss_scale),
                          jnp.maximum(state.loss_scale / factor, min_scale))
        good = jnp.where(finite & ~grow, state.good_steps + 1, 0)
        return updates, LossScaleState(inner, scale, good)

    return optax.GradientTransformation(init, update)
