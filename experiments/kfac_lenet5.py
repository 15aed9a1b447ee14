"""LeNet-5 on digits with K-FAC (kfac-jax), its layers found as Kronecker-factored conv2d and dense blocks through
funcnn's graph patterns (`funcnn.kfac`), against the same K-FAC seeing only generic blocks (kfac-jax's defaults) and
against Adam (lenet5_digits.py's optimiser).

    pip install git+https://github.com/google-deepmind/kfac-jax    # its main branch: the 0.0.8 release does not
    python experiments/kfac_lenet5.py                               # run on the JAX versions funcnn supports

funcnn's hand-written rules compute every gradient and every tangent in all three runs (K-FAC's adaptive learning
rate and momentum take Jacobian-vector products through funcnn's tangent rules). Writes the test accuracy per epoch
(curves.png) and the blocks K-FAC registered into runs/kfac_lenet5/.
"""

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import funcnn as fn
from funcnn import data, models, report, train, viz
from funcnn.data.batching import batch_indices

try:
    import kfac_jax

    from funcnn import kfac
except (ImportError, AttributeError) as err:  # kfac-jax 0.0.8 fails to import on jax >= 0.11 (jax.core.Effects)
    raise SystemExit(f"kfac_lenet5: kfac-jax does not import here ({type(err).__name__}: {err}); pip install "
                     "git+https://github.com/google-deepmind/kfac-jax (its 0.0.8 release imports with jax 0.10.x "
                     "only, and its optimiser does not run there)") from None


def epochs(model, update, params, opt_state, state, x, y, x_test, y_test, args):
    """`args.epochs` epochs of update(params, opt_state, batch, step) -> (params, opt_state), in the same shuffled
    batches for every optimiser; the test accuracy after each epoch."""
    key, evaluate = jax.random.PRNGKey(args.seed + 1), train.make_eval_step(model.apply)
    accuracy, step = [], 0
    for epoch in range(args.epochs):
        for index in batch_indices(len(x), args.batch_size, key=jax.random.fold_in(key, epoch), drop_last=True):
            params, opt_state = update(params, opt_state, (jnp.asarray(x[index]), jnp.asarray(y[index])), step)
            step += 1
        accuracy.append(train.evaluate(evaluate, params, state, x_test, y_test)["accuracy"])
    return params, accuracy


def kfac_run(model, params, state, x, y, x_test, y_test, args, registration):
    def loss(p, batch):
        logits = model.apply(p, state, batch[0], train=True)[0]
        kfac_jax.register_softmax_cross_entropy_loss(logits, batch[1])
        return jnp.mean(fn.softmax_cross_entropy(logits, batch[1]))

    optimizer = kfac_jax.Optimizer(
        value_and_grad_func=jax.value_and_grad(loss), l2_reg=1e-5, use_adaptive_learning_rate=True,
        use_adaptive_momentum=True, use_adaptive_damping=True, initial_damping=1.0, multi_device=False,
        num_burnin_steps=0, auto_register_kwargs=registration)
    key = jax.random.PRNGKey(args.seed + 1)
    first = (jnp.asarray(x[:args.batch_size]), jnp.asarray(y[:args.batch_size]))

    def update(params, opt_state, batch, step):
        try:
            params, opt_state, _ = optimizer.step(params, opt_state, jax.random.fold_in(key, 10_000 + step),
                                                  batch=batch, global_step_int=step)
        except ValueError as err:
            if "too many values to unpack" not in str(err):
                raise
            raise SystemExit("kfac_lenet5: kfac-jax does not run here: its 0.0.8 release predates jax 0.10's "
                             "Primitive.get_bind_params; install kfac-jax from its main branch (pip install "
                             "git+https://github.com/google-deepmind/kfac-jax)") from None
        return params, opt_state

    params, accuracy = epochs(model, update, params, optimizer.init(params, key, first), state, x, y, x_test, y_test,
                              args)
    return params, accuracy, kfac.registered_blocks(loss, params, first, funcnn_patterns=bool(registration))


def adam_run(model, params, state, x, y, x_test, y_test, args):
    opt = optax.adam(1e-3)

    @jax.jit
    def adam_step(params, opt_state, batch):
        grads = jax.grad(lambda p: jnp.mean(fn.softmax_cross_entropy(
            model.apply(p, state, batch[0], train=True)[0], batch[1])))(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    return epochs(model, lambda p, o, batch, step: adam_step(p, o, batch), params, opt.init(params), state, x, y,
                  x_test, y_test, args)


def main(argv=None):
    parser = report.experiment_parser(__doc__, "kfac_lenet5", epochs=(1, 15))
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    ds = data.digits()
    shape = models.INPUT_SHAPES["lenet5"]
    limit = 256 if args.quick else None
    x, y = data.fit_to_shape(ds.train.x[:limit], shape), ds.train.y[:limit]
    x_test, y_test = data.fit_to_shape(ds.test.x, shape), ds.test.y
    model = models.lenet5(ds.num_classes)
    _, params, state = model.init(jax.random.PRNGKey(args.seed), (1, *shape))
    rows, curves = [], {}
    for label, registration in (("K-FAC, funcnn's patterns", kfac.auto_register_kwargs()),
                                ("K-FAC, kfac-jax's defaults", {})):
        started = time.perf_counter()
        fresh = jax.tree.map(jnp.copy, params)  # kfac-jax's step donates the parameters' buffers
        _, accuracy, found = kfac_run(model, fresh, state, x, y, x_test, y_test, args, registration)
        rows.append({"optimiser": label, "blocks": ", ".join(f"{k} {v}" for k, v in sorted(found.items())),
                     "test accuracy": accuracy[-1], "best test accuracy": max(accuracy),
                     "seconds": time.perf_counter() - started})
        curves[label] = accuracy
    started = time.perf_counter()
    _, accuracy = adam_run(model, params, state, x, y, x_test, y_test, args)
    rows.append({"optimiser": "Adam 1e-3", "blocks": "-", "test accuracy": accuracy[-1],
                 "best test accuracy": max(accuracy), "seconds": time.perf_counter() - started})
    curves["Adam 1e-3"] = accuracy
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    viz.plot_series({k: np.asarray(v) for k, v in curves.items()}, out / "curves.png",
                    title="LeNet-5 on digits: test accuracy per epoch", xlabel="epoch", ylabel="test accuracy")
    report.write_results(args.out, rows, title="LeNet-5 on digits: K-FAC with funcnn's blocks, and Adam",
                         settings={"batch": args.batch_size, "epochs": args.epochs,
                                   "train / test": f"{len(x)} / {len(x_test)}",
                                   "K-FAC": "adaptive learning rate, momentum and damping, l2 1e-5"},
                         notes=["blocks: the layer tags kfac-jax's automatic registration made (funcnn's patterns: "
                                "2 conv2d + 3 dense; kfac-jax's defaults alone see funcnn's layers as generic and "
                                "their biases as scale_and_shift)", "curves.png: test accuracy per epoch"],
                         extra={"test accuracy per epoch": curves})


if __name__ == "__main__":
    main()
