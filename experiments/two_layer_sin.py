"""The "two-layer network in 25 lines" of lecture 003, written with funcnn's primitives.

    python experiments/two_layer_sin.py

The lecture's NumPy program (D, H, N = 8, 64, 32; learning rate 1e-4; 10,000 steps of plain gradient descent on
a fresh batch x ~ N(0, 1), y = sin(x)) trains W1 (D x H) and W2 (H x D) of y_hat = relu(x W1) W2 with the
backward pass written out by hand (dy_hat, dW2, da, ds, dW1). Here the same network is trained three ways from the
same initial weights and the same batches:

1. the lecture's hand-written backward, line for line, in jax.numpy;
2. `jax.grad` through funcnn's `dense` and `relu` (their hand-written custom VJPs);
3. `jax.grad` of plain jax.numpy (JAX's own autodiff).

It reports the largest gradient difference between them and plots the three loss curves (which should coincide).
"""

import jax
import jax.numpy as jnp
import numpy as np

import funcnn as fn
from funcnn import report, viz

D, H, N = 8, 64, 32


def lecture_gradients(W, x, y):
    """Lines 12-22 of the lecture's program."""
    s = x @ W["W1"]
    a = jnp.maximum(s, 0)
    y_hat = a @ W["W2"]
    loss = 0.5 * jnp.sum((y_hat - y) ** 2.0)
    dy_hat = y_hat - y
    dW2 = a.T @ dy_hat
    da = dy_hat @ W["W2"].T
    ds = (s > 0) * da
    dW1 = x.T @ ds
    return loss, {"W1": dW1, "W2": dW2}


def funcnn_loss(W, x, y):
    return 0.5 * jnp.sum((fn.dense(fn.relu(fn.dense(x, W["W1"])), W["W2"]) - y) ** 2)


def autodiff_loss(W, x, y):
    return 0.5 * jnp.sum((jnp.maximum(x @ W["W1"], 0) @ W["W2"] - y) ** 2)


METHODS = {
    "lecture's hand-written backward": lecture_gradients,
    "jax.grad through funcnn.dense / relu": jax.value_and_grad(funcnn_loss),
    "jax.grad of jax.numpy": jax.value_and_grad(autodiff_loss),
}


def train(gradients, W, keys, lr):
    def step(W, key):
        x = jax.random.normal(key, (N, D))
        loss, grads = gradients(W, x, jnp.sin(x))
        return jax.tree.map(lambda w, g: w - lr * g, W, grads), loss

    return jax.lax.scan(step, W, keys)


def run(args):
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(args.seed), 3)
    W0 = {"W1": jax.random.normal(k1, (D, H)), "W2": jax.random.normal(k2, (H, D))}
    keys = jax.random.split(k3, args.steps)
    x = jax.random.normal(keys[0], (N, D))
    reference = lecture_gradients(W0, x, jnp.sin(x))[1]
    rows, curves, first_W1 = [], {}, None
    for name, gradients in METHODS.items():
        grads = gradients(W0, x, jnp.sin(x))[1]
        W, losses = jax.jit(train, static_argnums=(0, 3))(gradients, W0, keys, args.lr)
        losses = np.asarray(losses)
        rel = max(float(jnp.linalg.norm(grads[k] - reference[k]) / jnp.linalg.norm(reference[k])) for k in grads)
        tail = max(args.steps // 20, 1)
        rows.append({"method": name, "gradient rel. difference vs lecture": rel, "first loss": float(losses[0]),
                     f"mean loss, last {tail} steps": float(losses[-tail:].mean()),
                     "final W1 max difference vs lecture": 0.0 if first_W1 is None else
                     float(jnp.max(jnp.abs(W["W1"] - first_W1)))})
        first_W1 = W["W1"] if first_W1 is None else first_W1
        curves[name] = losses
    return rows, curves


def main(argv=None):
    parser = report.experiment_parser(__doc__, "two_layer_sin", steps=(300, 10_000))
    parser.add_argument("--lr", type=float, default=1e-4)
    args = parser.parse_args(argv)
    rows, curves = run(args)
    smooth = max(args.steps // 100, 1)
    viz.plot_series({name: np.convolve(c, np.ones(smooth) / smooth, mode="valid") for name, c in curves.items()},
                    f"{args.out}/loss.png", title=f"two-layer ReLU net fitting sin (mean of {smooth} steps)",
                    ylabel="0.5 * sum of squared errors", logy=True)
    report.write_results(
        args.out, rows, title="The two-layer network in 25 lines: three ways to get its gradients",
        settings={"D, H, N": f"{D}, {H}, {N}", "steps": args.steps, "learning rate": args.lr},
        notes=["the three gradients agree to float32 rounding at the start, so the three runs follow the same "
               f"path (loss.png); the loss falls by a factor of {rows[0]['first loss'] / list(rows[0].values())[3]:,.0f}"
               " from the first step (large because W1 and W2 start at unit scale, as in the lecture)"],
        extra={"losses": curves})


if __name__ == "__main__":
    main()
