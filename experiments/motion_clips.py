"""Which way does the digit move? A 3-D convolution sees motion that no single image holds (lecture 004's
time-delay networks: a convolution along time, here together with the two image axes).

    python experiments/motion_clips.py

Data: scikit-learn's digits (shipped with the package), resized to 16x16 and made into 8-frame clips in which the
digit slides one pixel per frame right, left, down or up (wrapping around the frame), from a random offset. The
label is the direction. Three models of the same layers (`funcnn.models.clip_cnn`, every convolution with
"circular" borders, which match the wrap-around) are trained with the same budget:

    3-D network on the clip       (T, H, W) windows: 3x3x3 convolutions, 2x2x2 pools
    2-D network on the mean frame  the motion blur: it shows the axis of motion but not its sign
    2-D network on the first frame no motion at all: chance

The mean frame is the same for "right" and "left" (and for "down" and "up"), so the 2-D network on it can reach
about one half at best; the 3-D network can tell the directions apart. Prints and writes the test accuracies, and
draws one test clip per direction with its mean frame (`clips.png`).
"""

import time

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import count_params, data, models, report, train, viz

DIRECTIONS = {"right": (0, 1), "left": (0, -1), "down": (1, 0), "up": (-1, 0)}


def clips(images, rng, frames: int):
    """(N, 16, 16, 1) images -> (N, frames, 16, 16, 1) clips and direction labels: frame t is the image rolled by
    offset + t * velocity (wrapping around), the offset random per clip."""
    labels = rng.integers(0, len(DIRECTIONS), len(images))
    velocity = np.array(list(DIRECTIONS.values()))[labels]
    offsets = rng.integers(0, 16, (len(images), 2))
    out = np.empty((len(images), frames, *images.shape[1:]), np.float32)
    for n, (image, v, o) in enumerate(zip(images, velocity, offsets)):
        for t in range(frames):
            out[n, t] = np.roll(image, tuple(o + t * v), axis=(0, 1))
    return out, labels.astype(np.int32)


def train_one(view, sets, args):
    """Train the network on one view of the clips; its test accuracy, parameter count and seconds."""
    (x, y), (vx, vy), (tx, ty) = [(view(a), b) for a, b in sets]
    model = models.clip_cnn(len(DIRECTIONS), args.width, padding_mode="circular")  # the clips wrap around
    _, params, state = model.init(jax.random.PRNGKey(args.seed), (1, *x.shape[1:]))
    started = time.perf_counter()
    result = train.fit(model.apply, params, state, train.adam(args.lr), (x, y), (vx, vy),
                       key=jax.random.PRNGKey(args.seed + 1), epochs=args.epochs, batch_size=32, progress=False)
    test = train.evaluate(train.make_eval_step(model.apply), result.params, result.state, tx, ty)
    return test["accuracy"], count_params(result.params), time.perf_counter() - started


def run(args):
    ds = data.digits()
    rng = np.random.default_rng(args.seed)
    small = lambda x: np.asarray(jax.image.resize(jnp.asarray(x), (len(x), 16, 16, 1), "linear"))  # noqa: E731
    sets = [clips(small(x[:limit]), rng, args.frames)
            for x, limit in [(ds.train.x, args.train_size), (ds.val.x, None), (ds.test.x, None)]]
    views = {"3-D network on the clip": lambda c: c,
             "2-D network on the mean frame": lambda c: c.mean(axis=1),
             "2-D network on the first frame": lambda c: c[:, 0]}
    rows = []
    for name, view in views.items():
        accuracy, n_params, seconds = train_one(view, sets, args)
        rows.append({"model": name, "input": "x".join(map(str, view(sets[2][0][:1]).shape[1:])),
                     "parameters": n_params, "test accuracy": accuracy, "train seconds": seconds})
    return rows, [len(s[0]) for s in sets], sets[2]


def main(argv=None):
    parser = report.experiment_parser(__doc__, "motion_clips", epochs=(2, 12), train_size=(256, 1200))
    parser.add_argument("--frames", type=int, default=8, help="frames per clip (default 8)")
    parser.add_argument("--width", type=int, default=8, help="channels of the first convolution (default 8)")
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args(argv)
    if args.frames < 2:
        parser.error(f"--frames must be at least 2 (a clip needs motion), got {args.frames}")
    if args.width < 1 or args.train_size < 1 or args.epochs < 1:
        parser.error("--width, --train-size and --epochs must be positive")
    rows, sizes, (test_clips, test_labels) = run(args)
    examples = [int(np.flatnonzero(test_labels == k)[0]) for k in range(len(DIRECTIONS))]
    frames = [test_clips[n, t] for n in examples for t in range(args.frames)]
    titles = [f"{list(DIRECTIONS)[test_labels[n]]} t={t}" for n in examples for t in range(args.frames)]
    viz.plot_images(frames + [test_clips[n].mean(axis=0) for n in examples], f"{args.out}/clips.png",
                    columns=args.frames, titles=titles + [f"mean frame ({list(DIRECTIONS)[test_labels[n]]})"
                                                          for n in examples],
                    title="one test clip per direction, frame by frame; last row: the mean frames the 2-D net sees")
    report.write_results(
        args.out, rows, title="Motion direction from 8-frame digit clips: 3-D against 2-D convolutions",
        settings={"clips": f"{args.frames} frames of 16x16, train / val / test {sizes[0]} / {sizes[1]} / {sizes[2]}",
                  "epochs": args.epochs, "optimizer": f"Adam {args.lr}, batch 32", "classes": ", ".join(DIRECTIONS)},
        notes=["chance is 0.25; the mean frame tells the axis of motion, not its sign, so about 0.5 is its ceiling"])


if __name__ == "__main__":
    main()
