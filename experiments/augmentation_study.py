"""Data augmentation (lecture 004's list: rotation, translation, rescaling, flip, shear, stretch) when training
data is scarce.

    python experiments/augmentation_study.py

LeNet-5 is trained on a small subset of digits (default 300 images) three ways: without augmentation, with all
six of the lecture's augmentations (ranges scaled down by --scale: the lecture's full ranges rotate digits upside
down), and with the same set minus the flip (a mirrored digit is often another digit or none). Each model is
tested on the original test set and on a moved copy of it: every test image rotated by +-15 degrees and shifted
by +-3 pixels. Augmentation runs inside the compiled step (vmapped, jit-ed, its own PRNG key per image).
"""

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import data, models, report, train, viz
from funcnn.data import augment as A


def augmentations(scale):
    geometric = [A.random_rotation(-180 * scale, 180 * scale), A.random_translation(10 * scale),
                 A.random_rescale(1.6 ** -scale, 1.6**scale), A.random_shear(20 * scale),
                 A.random_stretch(1.3**scale)]
    return {"none": None, f"lecture's six (scale {scale})": A.lecture_augmentations(scale),
            f"five, without flip (scale {scale})": A.compose(*geometric)}


def moved(images, seed):
    """Rotate each image by +-15 degrees and shift it by +-3 pixels (signs at random, fixed seed)."""
    rng = np.random.default_rng(seed)
    angles = jnp.asarray(rng.choice([-15.0, 15.0], len(images)), jnp.float32)
    shifts = jnp.asarray(rng.choice([-3.0, 3.0], (len(images), 2)), jnp.float32)
    move = lambda image, angle, shift: A.affine(A.rotate(image, angle), jnp.eye(2), shift)
    return np.asarray(jax.jit(jax.vmap(move))(jnp.asarray(images), angles, shifts))


def run(args):
    ds = data.digits()
    x, y = ds.train.x[:args.train_size], ds.train.y[:args.train_size]
    test_sets = {"original test": (ds.test.x, ds.test.y), "moved test": (moved(ds.test.x, args.seed), ds.test.y)}
    model = models.lenet5(10)
    rows, examples = [], {}
    for name, augmentation in augmentations(args.scale).items():
        accuracy = {k: [] for k in test_sets}
        for seed in range(args.seeds):
            _, params, state = model.init(jax.random.PRNGKey(args.seed + seed), (1, 32, 32, 1))
            result = train.fit(model.apply, params, state, train.adam(1e-3), (x, y),
                               key=jax.random.PRNGKey(args.seed + seed), epochs=args.epochs, batch_size=32,
                               augment=augmentation, progress=False)
            evaluate = train.make_eval_step(model.apply)
            for k, (xs, ys) in test_sets.items():
                accuracy[k].append(train.evaluate(evaluate, result.params, result.state, xs, ys)["accuracy"])
        rows.append({"augmentation": name, **{f"{k} accuracy": float(np.mean(v)) for k, v in accuracy.items()},
                     **{f"{k} spread": float(np.ptp(v)) for k, v in accuracy.items()}})
        if augmentation is not None:
            examples[name] = A.augment_batch(augmentation, jax.random.PRNGKey(args.seed), jnp.asarray(x[:8]))
    return ds, x, test_sets, rows, examples


def main(argv=None):
    parser = report.experiment_parser(__doc__, "augmentation_study", epochs=(2, 60), seeds=(1, 3),
                                      train_size=(128, 300))
    parser.add_argument("--scale", type=float, default=0.25, help="fraction of the lecture's ranges")
    args = parser.parse_args(argv)
    ds, x, test_sets, rows, examples = run(args)
    grid = [x[i] for i in range(8)] + [im for batch in examples.values() for im in batch]
    grid += list(test_sets["moved test"][0][:8])
    titles = ["original"] * 8 + [n.split(" (")[0] for n in examples for _ in range(8)] + ["moved test"] * 8
    viz.plot_images(grid, f"{args.out}/examples.png", titles=titles, columns=8,
                    title="training images, their augmentations, and the moved test set")
    report.write_results(
        args.out, rows, title="Augmentation with little data: LeNet-5 on a digits subset",
        settings={"training images": len(x), "epochs": args.epochs, "seeds": args.seeds, "optimizer":
                  "Adam 1e-3, batch 32", "moved test": "each test image rotated +-15 deg and shifted +-3 px"},
        notes=["accuracy: mean over seeds; spread: max - min over seeds"])


if __name__ == "__main__":
    main()
