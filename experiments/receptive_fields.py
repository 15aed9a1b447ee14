"""What do the neurons of each conv layer respond to? Learn the input by backprop (lecture 004).

    python experiments/receptive_fields.py

LeNet-5 is trained on digits; then, for every channel of both conv layers, an input image is optimised by gradient
ascent to maximise that channel's mean response (the pre-activation of the conv layer), with a small L2
regulariser, kept in the pixel range [0, 1] by projection: maximise mean_ij z_c(x)_ij - lam ||x||^2. The gradients with respect to
the input come from funcnn's own hand-written VJPs (conv dX, max-pool routing, ReLU), through
`funcnn.layers.truncate`. All channels of a layer are optimised at once (one image per channel in one batch).

It also measures each layer's receptive field by backprop: the support of d z_c[centre] / d x, which must be 5x5
for conv1 and 14x14 for conv2 (5 + (5 - 1) x 2, through the 2x2/2 pool), and compares each channel's optimised
response with its largest response over the test set.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnn import data, layers as L, models, report, train, viz


def receptive_field(sub, params, state, shape):
    """Height and width of the input region that one central output unit depends on (its gradient's support)."""
    out = jax.eval_shape(lambda x: sub.apply(params, state, x)[0], jnp.zeros((1, *shape)))
    centre = (out.shape[1] // 2, out.shape[2] // 2)
    unit = lambda x: sub.apply(params, state, x)[0][0, centre[0], centre[1]].sum()
    grad = jax.grad(unit)(jax.random.uniform(jax.random.PRNGKey(1), (1, *shape)))
    rows, cols = np.nonzero(np.abs(np.asarray(grad[0, ..., 0])) > 0)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def maximise_channels(sub, params, state, channels, args):
    """One image per channel, each optimised to excite its own channel."""
    def objective(x):
        z = sub.apply(params, state, x)[0]                        # (C, H, W, C)
        own = jnp.stack([z[c, :, :, c].mean() for c in range(channels)])
        return -(own.sum() - args.l2 * jnp.sum(x**2)), own

    x = jax.random.uniform(jax.random.PRNGKey(args.seed), (channels, 32, 32, 1), maxval=0.1)
    optimizer = optax.adam(args.ascent_lr)
    opt_state = optimizer.init(x)

    @jax.jit
    def step(x, opt_state):
        (_, own), g = jax.value_and_grad(objective, has_aux=True)(x)
        updates, opt_state = optimizer.update(g, opt_state)
        return jnp.clip(optax.apply_updates(x, updates), 0.0, 1.0), opt_state, own  # stay a valid image

    for _ in range(args.ascent_steps):
        x, opt_state, own = step(x, opt_state)
    return np.asarray(x), np.asarray(own)


def run(args):
    ds = data.digits()
    model = models.lenet5(10)
    _, params, state = model.init(jax.random.PRNGKey(args.seed), (1, 32, 32, 1))
    result = train.fit(model.apply, params, state, train.adam(1e-3), (ds.train.x, ds.train.y),
                       key=jax.random.PRNGKey(args.seed), epochs=args.epochs, progress=False)
    params, state = result.params, result.state
    test_accuracy = train.evaluate(train.make_eval_step(model.apply), params, state, ds.test.x, ds.test.y)["accuracy"]
    rows, images = [], {}
    for name, key, expected in (("conv1", "0_Conv", (5, 5)), ("conv2", "3_Conv", (14, 14))):
        sub = L.truncate(model, key)
        channels = params[key]["w"].shape[-1]
        field = receptive_field(sub, params, state, (32, 32, 1))
        x, own = maximise_channels(sub, params, state, channels, args)
        test_maps = jax.jit(lambda x: sub.apply(params, state, x)[0])(ds.test.x)
        best_test = np.asarray(test_maps.mean(axis=(1, 2)).max(axis=0))   # best test image's mean response
        rows.append({"layer": name, "channels": channels, "receptive field (measured)": f"{field[0]}x{field[1]}",
                     "expected": f"{expected[0]}x{expected[1]}",
                     "optimised / best test response (median over channels)": float(np.median(own / best_test))})
        if field != expected:
            raise SystemExit(f"{name}: measured receptive field {field}, expected {expected}")
        images[name] = x
    return rows, images, test_accuracy


def main(argv=None):
    parser = report.experiment_parser(__doc__, "receptive_fields", epochs=(1, 10), ascent_steps=(20, 300))
    parser.add_argument("--ascent-lr", type=float, default=0.05)
    parser.add_argument("--l2", type=float, default=1e-3)
    args = parser.parse_args(argv)
    rows, images, test_accuracy = run(args)
    for name, x in images.items():
        viz.plot_images(list(x), f"{args.out}/{name}.png", normalise=True, columns=8,
                        titles=[f"{name}[{c}]" for c in range(len(x))],
                        title=f"inputs that maximise each {name} channel (gradient ascent, L2 {args.l2})")
    report.write_results(
        args.out, rows, title="Receptive fields of LeNet-5, learned by backprop to the input",
        settings={"LeNet-5 test accuracy": round(test_accuracy, 4), "training epochs": args.epochs,
                  "ascent": f"Adam {args.ascent_lr}, {args.ascent_steps} steps, L2 {args.l2}"},
        notes=["receptive field: the support of the gradient of one central unit with respect to the input",
               "optimised / best test response: each channel's mean response to its optimised image, over the "
               "largest mean response any test image gives it (above 1: the optimised image excites it more than "
               "every digit)"])


if __name__ == "__main__":
    main()
