"""Compiled training and evaluation steps.

    step = make_train_step(apply, optimizer)
    params, state, opt_state, metrics = step(params, state, opt_state, (x, y), rng)

The step is pure and `jax.jit`-compiled with params, state and opt_state donated (their buffers are reused for the
results: do not use the arguments after the call). Metrics are sums over the batch ("loss_sum", "correct") and the
batch size ("count"), so epoch means are exact whatever the batch sizes.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import primitives as P
from ..primitives.conv import compiler_options, tracing_for
from ..data.augment import augment_batch
from ..data.batching import batches
from .loop import positive
from .precision import loss_scale


def logits_of(outputs):
    """The class logits of a model's output: the output itself, or the first entry of a multi-head tuple."""
    return outputs[0] if isinstance(outputs, (tuple, list)) else outputs


def classification_loss(outputs, labels):
    """Per-example softmax cross-entropy of the (first head's) logits."""
    return P.softmax_cross_entropy(logits_of(outputs), labels)


def _metrics(outputs, labels, losses):
    """Summed loss and example count; for classification (integer labels, or labels = (classes, ...) for a
    multi-head model, with logits one axis longer) also the number of correct argmax predictions."""
    metrics = {"loss_sum": jnp.sum(losses), "count": jnp.asarray(losses.shape[0])}
    classes = labels[0] if isinstance(labels, (tuple, list)) else labels
    logits = logits_of(outputs)
    if jnp.issubdtype(classes.dtype, jnp.integer) and logits.ndim == classes.ndim + 1:
        metrics["correct"] = jnp.sum(jnp.argmax(logits, -1) == classes)
    return metrics


def make_train_step(apply: Callable, optimizer: optax.GradientTransformation, loss: Callable = classification_loss,
                    *, augment: Callable | None = None, donate: bool = True, jit: bool = True,
                    cpu_engine: str | None = None):
    """A pure step (params, state, opt_state, batch, rng) -> (params, state, opt_state, metrics).

    loss(outputs, labels) -> per-example losses (their mean is minimised). augment: an optional (key, image) ->
    image function applied to every training image (vmapped, inside the compiled step). rng feeds both the
    augmentation and the model (Dropout). cpu_engine: what runs the convolutions and the rest on a CPU (ignored on
    other backends): "onednn" (funcnn's oneDNN engine; the default where it is built), "eigen" (XLA's paths, no
    YNNPACK fusion; the default elsewhere), "xla" (XLA's default) or "ynn-dots" (docs/performance.md);
    None: the process's default (`$FUNCNN_CPU_ENGINE`, else as said).
    """
    options = compiler_options(cpu_engine)  # checked even when not compiling

    def step(params, state, opt_state, batch, rng):
        with tracing_for(cpu_engine):
            return _step(params, state, opt_state, batch, rng)

    def _step(params, state, opt_state, batch, rng):
        x, y = batch
        aug_key, model_key = jax.random.split(rng)
        if augment is not None:
            x = augment_batch(augment, aug_key, x)

        # dynamic loss scaling (funcnn.train.precision.loss_scaled): differentiate loss * scale; the optimiser
        # divides the gradients by the scale again and skips steps whose gradients overflowed
        scale = loss_scale(opt_state)

        def objective(params):
            outputs, new_state = apply(params, state, x, train=True, rng=model_key)
            losses = loss(outputs, y)
            mean = jnp.mean(losses.astype(jnp.float32))
            return (mean if scale is None else mean * scale), (outputs, new_state, losses)

        (_, (outputs, new_state, losses)), grads = jax.value_and_grad(objective, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_state, opt_state, _metrics(outputs, y, losses)

    if not jit:
        return step
    return jax.jit(step, donate_argnums=(0, 1, 2) if donate else (), compiler_options=options)


def make_eval_step(apply: Callable, loss: Callable = classification_loss, *, jit: bool = True,
                   cpu_engine: str | None = None):
    """A pure step (params, state, batch) -> metrics, with the model in evaluation mode (running statistics);
    cpu_engine as in `make_train_step`."""

    def step(params, state, batch):
        x, y = batch
        with tracing_for(cpu_engine):
            outputs, _ = apply(params, state, x, train=False)
        return _metrics(outputs, y, loss(outputs, y))

    options = compiler_options(cpu_engine)
    return jax.jit(step, compiler_options=options) if jit else step


def evaluate(eval_step, params, state, x, y, batch_size: int = 256) -> dict:
    """Mean loss over (x, y), evaluated in batches, and the accuracy when the step reports one (classification)."""
    positive("evaluate", batch_size=batch_size)
    totals: dict = {}
    for batch in batches(x, y, batch_size):
        for k, v in eval_step(params, state, batch).items():
            totals[k] = totals.get(k, 0.0) + float(v)
    count = max(totals.get("count", 0), 1)
    result = {"loss": totals.get("loss_sum", 0.0) / count}
    if "correct" in totals:
        result["accuracy"] = totals["correct"] / count
    return result


def predict(apply, params, state, x, batch_size: int = 256):
    """Class predictions (argmax of the logits) for x, in evaluation mode."""
    positive("predict", batch_size=batch_size)
    if len(x) == 0:
        raise ValueError(f"predict: x holds no example (shape {tuple(np.shape(x))})")
    fn = jax.jit(lambda p, s, xb: jnp.argmax(logits_of(apply(p, s, xb, train=False)[0]), -1),
                 compiler_options=compiler_options("eigen"))
    return jnp.concatenate([fn(params, state, x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
