"""Many models at once: R independent replicas in one compiled step, and per-example gradients.

Replicas are stacked along a leading axis of every parameter, state and optimiser-state array, and the ordinary
train step is `vmap`ped over that axis. Hyperparameters injected into the optimiser state (the learning rate and
weight decay of funcnn.train.recipes) become per-replica values, so a sweep is one compiled step:

    params, state = init_replicas(model.init, (1, 32, 32, 1), jax.random.split(key, 8))
    opt_state = init_replica_optimizer(train.adam(), params, learning_rate=[1e-4, 3e-4, 1e-3, ...])
    step = make_replica_train_step(model.apply, train.adam())
    params, state, opt_state, metrics = step(params, state, opt_state, batch, keys)   # metrics per replica

Replica r computes exactly what a separate run with its seed and hyperparameters would (tested).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from .steps import classification_loss, make_train_step


def init_replicas(init: Callable, input_shape, keys):
    """(params, state) of len(keys) models, stacked on a leading replica axis; replica r is init(keys[r], ...)."""

    def one(key):
        _, params, state = init(key, input_shape)
        return params, state

    return jax.vmap(one)(keys)


def init_replica_optimizer(optimizer, params, **hyperparams):
    """Stacked optimiser states for stacked params; each keyword (e.g. learning_rate=[...]) sets one injected
    hyperparameter per replica (a scalar is shared by all)."""
    opt_state = jax.vmap(optimizer.init)(params)
    replicas = jax.tree_util.tree_leaves(params)[0].shape[0]
    for name, values in hyperparams.items():
        if not hasattr(opt_state, "hyperparams") or name not in opt_state.hyperparams:
            raise ValueError(f"init_replica_optimizer: the optimiser has no injected hyperparameter {name!r}; "
                             "build it with funcnn.train.recipes or optax.inject_hyperparams")
        values = jnp.broadcast_to(jnp.asarray(values, opt_state.hyperparams[name].dtype), (replicas,))
        opt_state.hyperparams[name] = values
    return opt_state


def make_replica_train_step(apply: Callable, optimizer, loss: Callable = classification_loss, *,
                            shared_batch: bool = True, augment=None):
    """A jit-compiled step over stacked replicas: (params, state, opt_state, batch, rngs) -> same, metrics per
    replica. shared_batch: every replica sees the same batch (a sweep); False: batch arrays carry a replica axis."""
    step = make_train_step(apply, optimizer, loss, augment=augment, jit=False)
    mapped = jax.vmap(step, in_axes=(0, 0, 0, None if shared_batch else 0, 0))
    return jax.jit(mapped, donate_argnums=(0, 1, 2))


def per_example_grads(loss: Callable, params, batch):
    """The gradient of `loss(params, batch)` for each example alone, stacked on a leading axis.

    `loss` is an ordinary batch loss returning a scalar; each example is passed to it as a batch of one, so
    models written for batches work unchanged. Computed with vmap(grad) through funcnn's hand-written rules: equal
    to looping over the examples (the building block of per-example clipping in DP-SGD).
    """

    def one(example):
        batched = jax.tree_util.tree_map(lambda a: a[None], example)
        return jax.grad(loss)(params, batched)

    return jax.vmap(one)(batch)
