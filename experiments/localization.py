"""Finding bounding boxes (lecture 004): one network, two heads, multi-task loss.

    python experiments/localization.py

Scenes: a digit (from scikit-learn's digits) pasted at a random place and size (20 to 32 pixels) on a 64x64
canvas, with its tight box (`funcnn.data.make_scenes`); training scenes use training digits, test scenes test
digits. `funcnn.models.localizer` is a conv trunk with a class head (softmax cross-entropy) and a box head
(4 sigmoid outputs: y0, x0, y1, x1 relative to the canvas, L2 loss); the loss is CE + --box-weight * L2. Reports
accuracy, mean IoU and the fraction of boxes with IoU >= 0.5, for the multi-task network and for the same network
trained on one task only, and plots test scenes with true and predicted boxes.
"""

import jax
import jax.numpy as jnp
import numpy as np

import funcnn as fn
from funcnn import data, detection, models, report, train, viz


def multitask_loss(class_weight, box_weight):
    def loss(outputs, labels):
        logits, box = outputs
        classes, target = labels
        return (class_weight * fn.softmax_cross_entropy(logits, classes)
                + box_weight * jnp.sum((box - target) ** 2, axis=-1))

    return loss


def scenes(split, num, seed):
    s = data.make_scenes(split.x, split.y, num, canvas=64, objects=(1, 1), sizes=(20, 32), seed=seed)
    return s.x, (s.labels[:, 0], s.boxes[:, 0])


def run(args):
    ds = data.digits()
    x, y = scenes(ds.train, args.train_scenes, args.seed)
    x_val, y_val = scenes(ds.val, args.test_scenes // 2, args.seed + 1)
    x_test, (c_test, b_test) = scenes(ds.test, args.test_scenes, args.seed + 2)
    model = models.localizer(10)
    variants = {"multi-task (CE + L2)": (1.0, args.box_weight), "class only (CE)": (1.0, 0.0),
                "box only (L2)": (0.0, args.box_weight)}
    rows, predictions = [], {}
    for name, (class_weight, box_weight) in variants.items():
        _, params, state = model.init(jax.random.PRNGKey(args.seed), (1, 64, 64, 1))
        result = train.fit(model.apply, params, state, train.adam(1e-3), (x, y), (x_val, y_val),
                           loss=multitask_loss(class_weight, box_weight), key=jax.random.PRNGKey(args.seed),
                           epochs=args.epochs, batch_size=32, progress=False)
        predict = jax.jit(lambda p, xs: model.apply(p, state, xs)[0])
        logits, boxes = map(np.concatenate, zip(*[predict(result.params, x_test[i:i + 256])
                                                  for i in range(0, len(x_test), 256)]))
        iou = np.asarray(jax.vmap(lambda a, b: detection.box_iou(a[None], b[None])[0, 0])(boxes, b_test))
        rows.append({"training": name, "class accuracy": float(np.mean(logits.argmax(-1) == c_test)),
                     "mean IoU": float(iou.mean()), "IoU >= 0.5": float(np.mean(iou >= 0.5)),
                     "correct class and IoU >= 0.5": float(np.mean((iou >= 0.5) & (logits.argmax(-1) == c_test)))})
        predictions[name] = (logits.argmax(-1), boxes, iou)
    return x_test, c_test, b_test, rows, predictions


def main(argv=None):
    parser = report.experiment_parser(__doc__, "localization", epochs=(1, 15), train_scenes=(256, 4000),
                                      test_scenes=(128, 1000))
    parser.add_argument("--box-weight", type=float, default=10.0)
    args = parser.parse_args(argv)
    x_test, c_test, b_test, rows, predictions = run(args)
    classes, boxes, iou = predictions["multi-task (CE + L2)"]
    show = range(16)
    viz.plot_images([x_test[i] for i in show], f"{args.out}/test_scenes.png", columns=8,
                    titles=[f"{classes[i]} (true {c_test[i]}), IoU {iou[i]:.2f}" for i in show],
                    boxes=[[(b_test[i], "", "lime"), (boxes[i], "", "red")] for i in show],
                    title="multi-task network on test scenes: true box green, predicted red")
    report.write_results(
        args.out, rows, title="Localisation: class and bounding box from one network",
        settings={"training scenes": args.train_scenes, "test scenes": args.test_scenes, "epochs": args.epochs,
                  "box loss weight": args.box_weight, "optimizer": "Adam 1e-3, batch 32"},
        notes=["a head whose loss has weight 0 stays at its initialisation: the class-only network's boxes are "
               "near-degenerate (sigmoid(0) = 0.5 in all four coordinates) and the box-only network's classes are "
               "chance"])


if __name__ == "__main__":
    main()
