"""DP-SGD on digits: per-example gradients through funcnn's hand-written rules, clipped and noised with optax.

    python experiments/dp_sgd.py            # LeNet-5, 10 epochs, plain SGD vs DP-SGD (clip 1.0, noise 1.1)
    python experiments/dp_sgd.py --quick    # a tiny version in seconds

Each step computes one gradient per example (funcnn.train.per_example_grads: vmap of grad), clips each to L2 norm
`clip`, sums them, adds Gaussian noise of standard deviation noise * clip and averages
(optax.contrib.differentially_private_aggregate, Abadi et al. 2016). Writes runs/dp_sgd/results.md,
results.json and one validation-curve PNG per method.
"""

import time

import jax
import optax

import funcnn as fn
from funcnn import data, models, report, train, viz


def run(args):
    ds = data.digits()
    n = 256 if args.quick else len(ds.train.x)
    x, y = ds.train.x[:n], ds.train.y[:n]
    init, apply = models.lenet5(10)
    _, _, state = init(jax.random.PRNGKey(args.seed), (1, 32, 32, 1))  # LeNet-5 has no BatchNorm: nothing changes

    def loss(params, batch):
        logits, _ = apply(params, state, batch[0])
        return fn.softmax_cross_entropy(logits, batch[1]).mean()

    def make_step(dp):
        transform = optax.chain(
            optax.contrib.differentially_private_aggregate(args.clip, args.noise, jax.random.key(args.seed)),
            optax.sgd(args.lr, momentum=0.9)) if dp else optax.sgd(args.lr, momentum=0.9)

        @jax.jit
        def step(params, opt_state, batch):
            grads = train.per_example_grads(loss, params, batch) if dp else jax.grad(loss)(params, batch)
            updates, opt_state = transform.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        return transform, step

    eval_step = train.make_eval_step(apply)
    rows, curves = [], {}
    for name, dp in (("SGD", False), ("DP-SGD", True)):
        _, params, _ = init(jax.random.PRNGKey(args.seed), (1, 32, 32, 1))
        transform, step = make_step(dp)
        opt_state = transform.init(params)
        history, start = [], time.perf_counter()
        for epoch in range(args.epochs):
            for batch in data.batches(x, y, args.batch_size, key=jax.random.PRNGKey(epoch), drop_last=True):
                params, opt_state = step(params, opt_state, batch)
            fit_on_train = train.evaluate(eval_step, params, state, x, y)
            val = train.evaluate(eval_step, params, state, ds.val.x, ds.val.y)
            history.append({"epoch": epoch + 1, "train_loss": fit_on_train["loss"],
                            "train_accuracy": fit_on_train["accuracy"], "val_loss": val["loss"],
                            "val_accuracy": val["accuracy"]})
        test = train.evaluate(eval_step, params, state, ds.test.x, ds.test.y)
        rows.append({"method": name, "test accuracy": test["accuracy"], "test loss": test["loss"],
                     "train seconds": time.perf_counter() - start})
        curves[name] = history
    return rows, curves


def main(argv=None):
    parser = report.experiment_parser(__doc__, "dp_sgd", epochs=(1, 10))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--noise", type=float, default=1.1)
    args = parser.parse_args(argv)
    rows, curves = run(args)
    for name, history in curves.items():
        viz.plot_curves(history, f"{args.out}/curves_{name.lower().replace('-', '')}.png",
                        title=f"{name} (train = the training set evaluated after each epoch)")
    report.write_results(
        args.out, rows, title="DP-SGD vs SGD: LeNet-5 on digits",
        settings={"epochs": args.epochs, "batch": args.batch_size, "optimizer": f"SGD {args.lr}, momentum 0.9",
                  "DP-SGD clip": args.clip, "noise multiplier": args.noise},
        extra={"curves": curves})


if __name__ == "__main__":
    main()
