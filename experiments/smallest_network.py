"""The "world's smallest network" (lecture 000): one fully-connected layer with softmax cross-entropy that tells
apart 3x3 pixel patterns of three classes (horizontal line, vertical line, diagonal).

    python experiments/smallest_network.py

Nine inputs, three outputs, 30 parameters: z = x W + b, trained by plain gradient descent through funcnn's
hand-written `dense` and `softmax_cross_entropy` rules. Prints the learned weights, one 3x3 template per class,
and the accuracy; plots the templates and the loss. The lecture's figures were lost, so the patterns are
`funcnn.data.patterns3x3`'s reconstruction (with pixel noise).
"""

import jax
import jax.numpy as jnp
import numpy as np

import funcnn as fn
from funcnn import data, report, viz


def single_layer(params, x):
    return fn.dense(x, params["w"], params["b"])


def hidden_layer(params, x):
    return fn.dense(fn.relu(fn.dense(x, params["w1"], params["b1"])), params["w2"], params["b2"])


def train(forward, params, x, y, args):
    def loss(params, x, y):
        return fn.softmax_cross_entropy(forward(params, x), y).mean()

    @jax.jit
    def step(params):
        value, grads = jax.value_and_grad(loss)(params, x, y)
        return jax.tree.map(lambda p, g: p - args.lr * g, params, grads), value

    losses = []
    for _ in range(args.steps):
        params, value = step(params)
        losses.append(float(value))
    return params, losses


def run(args):
    ds = data.patterns3x3(noise=args.noise, copies=args.copies, seed=args.seed)
    flat = lambda split: (jnp.asarray(split.x.reshape(len(split.x), 9)), jnp.asarray(split.y))
    (x, y), (x_test, y_test) = flat(ds.train), flat(ds.test)
    k1, k2 = jax.random.split(jax.random.PRNGKey(args.seed))
    models = {
        "single layer 9-3 (lecture)": (single_layer, {"w": 0.01 * jax.random.normal(k1, (9, 3)), "b": jnp.zeros(3)}),
        f"hidden layer 9-{args.hidden}-3, ReLU": (hidden_layer, {
            "w1": jax.random.normal(k1, (9, args.hidden)) * np.sqrt(2 / 9), "b1": jnp.zeros(args.hidden),
            "w2": jax.random.normal(k2, (args.hidden, 3)) * np.sqrt(1 / args.hidden), "b2": jnp.zeros(3)}),
    }
    rows, results = [], {}
    for name, (forward, params) in models.items():
        params, losses = train(forward, params, x, y, args)
        accuracy = lambda xs, ys: float(jnp.mean(jnp.argmax(forward(params, xs), -1) == ys))
        rows.append({"network": name, "parameters": sum(p.size for p in jax.tree.leaves(params)),
                     "final loss": losses[-1], "train accuracy": accuracy(x, y),
                     "test accuracy": accuracy(x_test, y_test)})
        results[name] = (params, losses)
    return ds, rows, results


def main(argv=None):
    parser = report.experiment_parser(__doc__, "smallest_network", steps=(100, 500))
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--noise", type=float, default=0.2)
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--hidden", type=int, default=16)
    args = parser.parse_args(argv)
    ds, rows, results = run(args)
    params, _ = results[rows[0]["network"]]
    w, b = np.asarray(params["w"]), np.asarray(params["b"])
    print("learned weights, one 3x3 template per class (rows of the image), and the bias:")
    for c, name in enumerate(ds.class_names):
        print(f"  {name:<10} b = {b[c]:+.2f}\n" + "\n".join("    " + " ".join(f"{v:+.2f}" for v in row)
                                                      for row in w[:, c].reshape(3, 3)))
    viz.plot_images([w[:, c].reshape(3, 3) for c in range(3)], f"{args.out}/weights.png", normalise=True,
                    titles=list(ds.class_names), columns=3, cmap="RdBu_r",
                    title="learned weights (red positive, blue negative)")
    viz.plot_series({name: losses for name, (_, losses) in results.items()}, f"{args.out}/loss.png",
                    title="gradient descent", ylabel="training cross-entropy", logy=True)
    report.write_results(
        args.out, rows, title="The world's smallest network on 3x3 patterns",
        settings={"steps": args.steps, "learning rate": args.lr, "pixel noise": args.noise,
                  "train / test examples": f"{len(ds.train.x)} / {len(ds.test.x)}"},
        notes=["with these patterns (a line in any of its three rows, columns, or either diagonal) no single "
               "linear layer can be right on every clean image: write D = W_h - W_v and d = b_h - b_v; every row "
               "image needs rowsum_r(D) + d > 0 and every column image colsum_c(D) + d < 0, and summing each set of "
               "three gives sum(D) + 3d > 0 and < 0 at once. The hidden ReLU layer removes the contradiction",
               "the lecture's own patterns did not survive the transcript (funcnn.data.patterns3x3 is a "
               "reconstruction); if each class was one fixed pattern, the single layer separates them, as the "
               "lecture shows"],
        extra={"weights": w, "bias": b, "losses": {name: losses for name, (_, losses) in results.items()}})


if __name__ == "__main__":
    main()
