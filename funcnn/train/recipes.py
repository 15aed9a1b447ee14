"""The lectures' optimisation recipes as optax chains, with an injectable learning rate.

Every recipe is built with `optax.inject_hyperparams`, so its learning rate lives in the optimiser state and the
plateau rule ("divide the learning rate by 10 when validation accuracy plateaus", AlexNet and ResNet in lecture
004) can change it between epochs without recompiling.
"""

from __future__ import annotations

import math
import numbers

import optax

from .. import catalog


def _sgd_chain(learning_rate, momentum, weight_decay, nesterov=False):
    return optax.chain(optax.add_decayed_weights(weight_decay),
                       optax.sgd(learning_rate, momentum=momentum or None, nesterov=nesterov))


def _adam_chain(learning_rate, weight_decay):
    return optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(learning_rate))


def _check(name, learning_rate, weight_decay, momentum=0.0):
    """Hyperparameters in range: a learning rate > 0, weight decay >= 0, momentum in [0, 1); ValueError naming it.
    (A schedule, a callable of the step, is not checked.)"""
    for what, value, ok in (("learning_rate", learning_rate, lambda v: 0 < v < math.inf),
                            ("weight_decay", weight_decay, lambda v: 0 <= v < math.inf),
                            ("momentum", momentum, lambda v: 0 <= v < 1)):
        if callable(value) or (what == "momentum" and value is None):
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not ok(float(value)):
            bounds = {"learning_rate": "> 0", "weight_decay": ">= 0", "momentum": "in [0, 1)"}[what]
            raise ValueError(f"{name}: {what} must be a number {bounds}, got {value!r}")


def sgd(learning_rate: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0, nesterov: bool = False):
    """SGD with momentum (0.9 in the lectures) and L2 weight decay added to the gradient (coupled, as in AlexNet)."""
    _check("sgd", learning_rate, weight_decay, momentum)
    return optax.inject_hyperparams(_sgd_chain, static_args=("momentum", "nesterov"))(
        learning_rate=learning_rate, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)


def adam(learning_rate: float = 1e-3, weight_decay: float = 0.0):
    """Adam (the lecture's answer to "standard convergence issues"), optional L2 weight decay."""
    _check("adam", learning_rate, weight_decay)
    return optax.inject_hyperparams(_adam_chain)(learning_rate=learning_rate, weight_decay=weight_decay)


def alexnet_recipe(learning_rate: float = 0.01):
    """AlexNet (lecture 004): SGD, momentum 0.9, L2 weight decay 5e-4, batch 128, lr 0.01 divided by 10 on plateau."""
    return sgd(learning_rate, momentum=0.9, weight_decay=5e-4)


def resnet_recipe(learning_rate: float = 0.1):
    """ResNet (lecture 004): SGD, momentum 0.9, weight decay 1e-4 (the paper; the slide says 1e-5), lr 0.1 / 10."""
    return sgd(learning_rate, momentum=0.9, weight_decay=1e-4)


RECIPES = {name: globals()[recipe] for name, recipe in catalog.OPTIMIZERS.items()}  # the table: funcnn.catalog


def get_learning_rate(opt_state) -> float:
    try:
        value = opt_state.hyperparams["learning_rate"]
        if hasattr(value, "is_fully_addressable") and not value.is_fully_addressable:
            value = value.addressable_data(0)  # a replicated array of a multi-process run: this process's copy
        return float(value)
    except AttributeError:
        raise ValueError("the optimiser has no injectable learning rate: build it with funcnn.train.recipes "
                         "or optax.inject_hyperparams") from None


def set_learning_rate(opt_state, value: float):
    """The optimiser state with its learning rate replaced (the state's dtype kept)."""
    lr = opt_state.hyperparams["learning_rate"]
    opt_state.hyperparams["learning_rate"] = lr * 0 + value
    return opt_state


class Plateau:
    """Host-side rule: when the monitored metric has not improved by more than `min_delta` for `patience` epochs,
    multiply the learning rate by `factor` (0.1: "divide by 10") and start counting again."""

    def __init__(self, patience: int, factor: float = 0.1, min_delta: float = 1e-4, mode: str = "max"):
        if patience < 1 or not 0 < factor < 1:
            raise ValueError(f"Plateau: need patience >= 1 and 0 < factor < 1, got {patience}, {factor}")
        self.patience, self.factor, self.min_delta, self.mode = patience, factor, min_delta, mode
        self.best, self.bad_epochs = None, 0

    def step(self, value: float) -> bool:
        """Record an epoch's metric; True when the learning rate should be reduced now."""
        better = self.best is None or (value > self.best + self.min_delta if self.mode == "max"
                                       else value < self.best - self.min_delta)
        if better:
            self.best, self.bad_epochs = value, 0
            return False
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            self.bad_epochs = 0
            return True
        return False
