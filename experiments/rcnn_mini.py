"""R-CNN (lecture 000: "regions with CNN features") at small scale, on synthetic scenes of several digits.

    python experiments/rcnn_mini.py

The pipeline of Girshick et al. (2014), step by step:
1. Region proposals: square sliding windows at three scales (`funcnn.detection.sliding_windows`), the same ~200
   for every 64x64 scene (the lecture's stand-in for selective search).
2. Warp every proposal to the CNN's 32x32 input (`detection.crop_and_resize`, bilinear).
3. CNN features: LeNet-5, fine-tuned with an 11th "background" class on warped training proposals (IoU >= 0.5
   with a digit: that digit; IoU < 0.3: background), read at its 84-unit penultimate layer.
4. One linear SVM per class on the features (hinge loss, one-vs-rest, trained with optax): class c's positives
   are the warped ground-truth boxes of class c; its negatives are the other classes' ground-truth boxes and
   the background proposals (IoU < 0.3 with every digit).
5. Linear (ridge) regression from the features to the box offsets (dy, dx, log dh, log dw) of proposals with
   IoU >= 0.6 (`detection.encode_boxes`).
6. At test time: score every proposal with every SVM, move it by the regressor, non-maximum suppression per
   class, then mean average precision at IoU 0.5 (PASCAL VOC's all-point AP), with and without step 5.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnn import data, detection, layers as L, models, report, train, viz

BACKGROUND = 10
SIZE = 32


def proposals():
    return detection.sliding_windows([0.3, 0.4, 0.5], stride=0.25)


def warp(images, boxes, chunk=32):
    """Warp boxes out of every scene: images (n, H, W, 1), boxes (k, 4) shared or (n, k, 4) per scene ->
    (n, k, 32, 32, 1)."""
    per_scene = boxes.ndim == 3
    crop = jax.jit(jax.vmap(lambda image, b: detection.crop_and_resize(image, b, SIZE),
                            in_axes=(0, 0 if per_scene else None)))
    return np.concatenate([np.asarray(crop(images[i:i + chunk], boxes[i:i + chunk] if per_scene else boxes))
                           for i in range(0, len(images), chunk)])


def truth(scenes, n):
    """Per scene: list of (class, box) of its digits."""
    return [[(int(c), b) for c, b in zip(scenes.labels[i], scenes.boxes[i]) if c >= 0] for i in range(n)]


def labelled_regions(scenes, boxes, rng, negatives_per_positive=1.0):
    """Fine-tuning set: warped proposals labelled by IoU (digit if >= 0.5, background if < 0.3) plus the warped
    ground-truth boxes; background subsampled to the given ratio. Also the box-regression pairs (IoU >= 0.6).
    The ground-truth crops come last."""
    crops, gt_crops = warp(scenes.x, boxes), warp(scenes.x, scenes.boxes)
    iou = np.asarray(jax.vmap(detection.box_iou, in_axes=(None, 0))(boxes, scenes.boxes))  # (n, k, objects)
    iou = np.where(scenes.labels[:, None, :] >= 0, iou, -1.0)
    best, which = iou.max(2), iou.argmax(2)
    x, y, reg_x, reg_target = [], [], [], []
    for i in range(len(scenes.x)):
        positive = np.nonzero(best[i] >= 0.5)[0]
        negative = np.nonzero(best[i] < 0.3)[0]
        wanted = int(np.ceil(negatives_per_positive * (len(positive) + scenes.counts[i])))
        negative = rng.choice(negative, min(len(negative), wanted), replace=False)
        x += [crops[i, positive], crops[i, negative]]
        y += [scenes.labels[i, which[i, positive]], np.full(len(negative), BACKGROUND)]
        regress = np.nonzero(best[i] >= 0.6)[0]
        reg_x.append(crops[i, regress])
        reg_target.append(np.asarray(detection.encode_boxes(boxes[regress], scenes.boxes[i, which[i, regress]])))
    valid = scenes.labels >= 0
    x.append(gt_crops[valid])
    y.append(scenes.labels[valid])
    return (np.concatenate(x), np.concatenate(y).astype(np.int32),
            np.concatenate(reg_x), np.concatenate(reg_target))


def train_svms(features, labels, args):
    """One-vs-rest linear SVMs: minimise mean_i sum_c max(0, 1 - t_ic (f_i w_c + b_c)) + lam/2 |W|^2 with
    t_ic = +1 for class c, -1 otherwise."""
    targets = jnp.where(jax.nn.one_hot(labels, 10) > 0, 1.0, -1.0)
    params = {"w": jnp.zeros((features.shape[1], 10)), "b": jnp.zeros(10)}
    optimizer = optax.adam(args.svm_lr)
    opt_state = optimizer.init(params)

    def objective(p):
        margins = targets * (features @ p["w"] + p["b"])
        return jnp.mean(jnp.sum(jnp.maximum(0.0, 1.0 - margins), axis=1)) + 0.5 * args.svm_l2 * jnp.sum(p["w"] ** 2)

    @jax.jit
    def step(p, s):
        loss, g = jax.value_and_grad(objective)(p)
        updates, s = optimizer.update(g, s)
        return optax.apply_updates(p, updates), s, loss

    for _ in range(args.svm_steps):
        params, opt_state, loss = step(params, opt_state)
    return params, float(loss)


def ridge(features, targets, l2):
    a = np.concatenate([features, np.ones((len(features), 1))], axis=1)
    return np.linalg.solve(a.T @ a + l2 * np.eye(a.shape[1]), a.T @ targets)


def detect(scores, boxes, deltas, args):
    """Per class: proposals scoring above the threshold, moved by the regressor, then NMS."""
    found = []
    for c in range(10):
        keep = np.nonzero(scores[:, c] > args.score_threshold)[0]
        if deltas is None:
            moved = boxes[keep]
        else:
            moved = np.asarray(detection.decode_boxes(boxes[keep], deltas[keep]))
        for j in detection.nms(moved, scores[keep, c], args.nms_iou):
            found.append((c, float(scores[keep[j], c]), moved[j]))
    return found


def run(args):
    rng = np.random.default_rng(args.seed)
    ds = data.digits()
    make = lambda split, n, seed: data.make_scenes(split.x, split.y, n, canvas=64, objects=(1, 3), sizes=(20, 32),
                                                   seed=seed)
    train_scenes, test_scenes = make(ds.train, args.train_scenes, args.seed), make(ds.test, args.test_scenes,
                                                                                   args.seed + 1)
    boxes = proposals()
    timings = {}
    start = time.perf_counter()
    x, y, reg_x, reg_targets = labelled_regions(train_scenes, boxes, rng)
    timings["proposals + warping (train)"] = time.perf_counter() - start

    # 3. fine-tune LeNet-5 with a background class, then read the 84-unit features
    model = models.lenet5(11)
    _, params, state = model.init(jax.random.PRNGKey(args.seed), (1, SIZE, SIZE, 1))
    start = time.perf_counter()
    result = train.fit(model.apply, params, state, train.adam(1e-3), (x, y), key=jax.random.PRNGKey(args.seed),
                       epochs=args.epochs, batch_size=64, progress=False)
    timings["CNN fine-tuning"] = time.perf_counter() - start
    trunk = L.truncate(model, "10_Relu")
    featurise = jax.jit(lambda xs: trunk.apply(result.params, result.state, xs)[0])
    features = lambda xs: np.concatenate([np.asarray(featurise(xs[i:i + 1024])) for i in range(0, len(xs), 1024)])

    # 4. SVMs: ground-truth positives and IoU < 0.3 negatives (the background crops)
    start = time.perf_counter()
    svm_set = y == BACKGROUND
    svm_set[-int(train_scenes.counts.sum()):] = True  # the ground-truth crops
    svm, hinge = train_svms(features(x[svm_set]), np.where(y[svm_set] == BACKGROUND, -1, y[svm_set]), args)
    # 5. box regression
    regressor = ridge(features(reg_x), reg_targets, args.ridge)
    timings["SVMs + box regression"] = time.perf_counter() - start

    # 6. test
    start = time.perf_counter()
    crops = warp(test_scenes.x, boxes)
    gt = truth(test_scenes, len(test_scenes.x))
    detections = {"SVM scores, no box regression": [], "SVM scores + box regression": []}
    for i in range(len(crops)):
        f = features(crops[i])
        scores = f @ np.asarray(svm["w"]) + np.asarray(svm["b"])
        deltas = np.concatenate([f, np.ones((len(f), 1))], axis=1) @ regressor
        detections["SVM scores, no box regression"].append(detect(scores, boxes, None, args))
        detections["SVM scores + box regression"].append(detect(scores, boxes, deltas, args))
    timings["test: warp, features, score, NMS"] = time.perf_counter() - start
    rows = []
    for name, dets in detections.items():
        mean_ap, per_class = detection.mean_average_precision(dets, gt, 10, iou_threshold=0.5)
        ap_75, _ = detection.mean_average_precision(dets, gt, 10, iou_threshold=0.75)
        rows.append({"detector": name, "mAP@0.5": mean_ap, "mAP@0.75": ap_75,
                     "detections per scene": float(np.mean([len(d) for d in dets])),
                     **{f"AP {c}": per_class.get(c, float("nan")) for c in range(10)}})
    stats = {"proposals per scene": len(boxes), "fine-tuning regions": len(x), "regression pairs": len(reg_x),
             "final hinge loss": hinge, "objects per test scene": float(np.mean(test_scenes.counts))}
    return test_scenes, gt, detections, rows, stats, timings


def main(argv=None):
    parser = report.experiment_parser(__doc__, "rcnn_mini", epochs=(1, 8), train_scenes=(48, 800),
                                      test_scenes=(8, 200), svm_steps=(50, 1000))
    parser.add_argument("--svm-lr", type=float, default=1e-2)
    parser.add_argument("--svm-l2", type=float, default=1e-3)
    parser.add_argument("--ridge", type=float, default=1.0, help="L2 penalty of the box regression")
    parser.add_argument("--score-threshold", type=float, default=-0.5)
    parser.add_argument("--nms-iou", type=float, default=0.3)
    args = parser.parse_args(argv)
    scenes, gt, detections, rows, stats, timings = run(args)
    show = range(min(8, len(scenes.x)))
    final = detections["SVM scores + box regression"]
    viz.plot_images([scenes.x[i] for i in show], f"{args.out}/detections.png", columns=4,
                    boxes=[[(b, "", "lime") for _, b in gt[i]] +
                           [(b, f"{c} {s:.1f}", "red") for c, s, b in final[i] if s > 0] for i in show],
                    title="R-CNN on test scenes: truth green, detections (score > 0) red")
    report.write_results(
        args.out, rows, title="R-CNN at small scale: sliding-window proposals, LeNet-5 features, SVMs, box "
        "regression, NMS", columns=["detector", "mAP@0.5", "mAP@0.75", "detections per scene"],
        settings={**stats, "training scenes": args.train_scenes, "test scenes": args.test_scenes,
                  "CNN fine-tuning epochs": args.epochs},
        notes=[f"{k}: {v:.1f} s" for k, v in timings.items()] +
              ["per-class AP is in results.json"], extra={"timings": timings})


if __name__ == "__main__":
    main()
