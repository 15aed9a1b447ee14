"""Why non-linear activations (lectures 000 and 003): stacked linear layers collapse to one linear map, and a ReLU
between them fits what no linear map can.

    python experiments/linear_vs_nonlinear.py

Two networks with the same shape, 2 -> H -> H -> 3 (funcnn.layers Dense), trained by Adam on CS231n's 3-arm spiral:
one with ReLU between the layers, one without. For the linear one, the three weight matrices are multiplied out
(W = W1 W2 W3, b = (b1 W2 + b2) W3 + b3) and the single layer x W + b is checked to give the same outputs. The
decision regions of the linear stack, its collapsed single layer and the ReLU network are plotted side by side.
"""

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import data, layers as L, report, train, viz


def network(hidden, relu):
    act = [L.Relu()] if relu else []
    return L.serial(L.Dense(hidden), *act, L.Dense(hidden), *act, L.Dense(3))


def run(args):
    x, y = data.spiral(args.points, 3, seed=args.seed)
    x_test, y_test = data.spiral(args.points, 3, seed=args.seed + 1)
    rows, predictors = [], {}
    for name, relu in (("linear stack (no activation)", False), ("ReLU network", True)):
        init, apply = network(args.hidden, relu)
        _, params, state = init(jax.random.PRNGKey(args.seed), (1, 2))
        optimizer = train.adam(args.lr)
        step = train.make_train_step(apply, optimizer)
        opt_state = optimizer.init(params)
        for i in range(args.steps):
            params, state, opt_state, metrics = step(params, state, opt_state, (x, y), jax.random.PRNGKey(i))
        evaluate = train.make_eval_step(apply)
        test = train.evaluate(evaluate, params, state, x_test, y_test)
        predictors[name] = lambda p, apply=apply, params=params, state=state: train.predict(apply, params, state, p,
                                                                                            batch_size=1 << 16)
        rows.append({"network": name, "train accuracy": float(metrics["correct"] / metrics["count"]),
                     "test accuracy": test["accuracy"], "test loss": test["loss"]})
        if not relu:
            layers = [params[k] for k in sorted(params)]  # "0_Dense", "1_Dense", "2_Dense"
            W = layers[0]["w"] @ layers[1]["w"] @ layers[2]["w"]
            b = (layers[0]["b"] @ layers[1]["w"] + layers[1]["b"]) @ layers[2]["w"] + layers[2]["b"]
            stacked = apply(params, state, x_test)[0]
            collapsed = x_test @ W + b
            collapse_error = float(jnp.max(jnp.abs(stacked - collapsed)) / jnp.max(jnp.abs(stacked)))
            predictors["the same, collapsed to x W + b"] = lambda p, W=W, b=b: np.argmax(p @ W + b, axis=1)
            rows.append({"network": "the same, collapsed to x W + b", "train accuracy":
                         float(np.mean(np.argmax(x @ W + b, 1) == y)),
                         "test accuracy": float(np.mean(np.argmax(x_test @ W + b, 1) == y_test)),
                         "test loss": test["loss"]})
    return x, y, rows, predictors, collapse_error


def main(argv=None):
    parser = report.experiment_parser(__doc__, "linear_vs_nonlinear", steps=(200, 2000))
    parser.add_argument("--points", type=int, default=100, help="points per spiral arm")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-2)
    args = parser.parse_args(argv)
    x, y, rows, predictors, collapse_error = run(args)
    viz.plot_decision_regions(predictors, x, y, f"{args.out}/decision_regions.png",
                              title="3-arm spiral: decision regions")
    report.write_results(
        args.out, rows, title="Linear layers collapse; a ReLU between them does not",
        settings={"layers": f"2-{args.hidden}-{args.hidden}-3", "steps": args.steps, "optimizer": f"Adam {args.lr}",
                  "points per arm": args.points},
        notes=[f"the product of the linear stack's weights reproduces its outputs to {collapse_error:.1e} "
               "(relative, float32): three linear layers are one linear map, with straight class boundaries",
               "the ReLU network bends its boundaries around the arms (decision_regions.png)"],
        extra={"collapse_relative_error": collapse_error})


if __name__ == "__main__":
    main()
