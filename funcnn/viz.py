"""Plots (matplotlib, saved as PNG): learning curves, first-layer filters, feature maps, a confusion matrix."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .layers import truncate


def _pyplot():
    """pyplot with the Agg backend; imported here, on the first plot: matplotlib takes ~0.5 s and picks a backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def read_metrics(path) -> list[dict]:
    """The rows of a metrics.jsonl log."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_curves(history, path, title: str = "training"):
    """Loss and accuracy per epoch (train and, when logged, validation). `history`: rows or a metrics.jsonl path."""
    rows = read_metrics(history) if isinstance(history, (str, Path)) else list(history)
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    epochs = [r["epoch"] for r in rows]
    for split in ("train", "val"):
        if rows and f"{split}_loss" in rows[0]:
            ax_loss.plot(epochs, [r[f"{split}_loss"] for r in rows], marker="o", label=split)
            ax_acc.plot(epochs, [r[f"{split}_accuracy"] for r in rows], marker="o", label=split)
    ax_loss.set(xlabel="epoch", ylabel="loss", title=f"{title}: loss", yscale="log")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title=f"{title}: accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def _grid(n):
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def _normalise(a):
    a = np.asarray(a, np.float64)
    lo, hi = a.min(), a.max()
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def plot_filters(w, path, title: str = "first-layer filters"):
    """One tile per output channel of an HWIO filter bank, titled by its index: grey for 1 input channel (one
    colour scale shared by every tile, with a colour bar: weights compare across filters), RGB for 3 (each tile
    stretched to [0, 1]), else input channel 0."""
    w = np.asarray(w, np.float64)
    rows, cols = _grid(w.shape[-1])
    plt = _pyplot()
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols + 0.8, 1.3 * rows + 0.4), squeeze=False)
    limit = float(np.max(np.abs(w))) or 1.0
    shown = None
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < w.shape[-1]:
            tile = w[:, :, :, i]
            if tile.shape[-1] == 3:
                ax.imshow(_normalise(tile), interpolation="nearest")
            else:
                shown = ax.imshow(tile[:, :, 0], cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
            ax.set_title(f"filter {i}", fontsize=7)
    if shown is not None:
        fig.colorbar(shown, ax=axes.ravel().tolist(), shrink=0.8, label="weight")
    fig.suptitle(title)
    return _save(fig, path)


def plot_feature_maps(layers, path, title: str = "feature maps", image=None, columns: int = 8,
                      true_label=None, predicted_label=None):
    """Feature maps of one example: `layers` is a list of (name, maps (H, W, C)); each layer gets its own rows, one
    tile per channel on one colour scale per layer with a colour bar, after the input image (titled with its true
    and predicted class when given)."""
    layers = [(name, np.asarray(maps)) for name, maps in layers]
    rows_per = [math.ceil(m.shape[-1] / columns) for _, m in layers]
    total_rows = sum(rows_per) + (image is not None)
    plt = _pyplot()
    fig, axes = plt.subplots(total_rows, columns, figsize=(1.25 * columns + 1.0, 1.3 * total_rows + 0.5),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    row = 0
    if image is not None:
        axes[0, 0].imshow(np.asarray(image)[..., 0], cmap="gray", interpolation="nearest")
        label = "input"
        if true_label is not None or predicted_label is not None:
            label = f"true {true_label}, predicted {predicted_label}"
        axes[0, 0].set_title(label, fontsize=7, loc="left")
        row = 1
    for (name, maps), n_rows in zip(layers, rows_per):
        lo, hi = float(maps.min()), float(maps.max())
        hi = hi if hi > lo else lo + 1.0
        shown = None
        for c in range(maps.shape[-1]):
            ax = axes[row + c // columns, c % columns]
            shown = ax.imshow(maps[..., c], cmap="viridis", vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_title(f"{name} [{c}]", fontsize=6)
        if shown is not None:
            fig.colorbar(shown, ax=axes[row:row + n_rows].ravel().tolist(), shrink=0.9, label=name)
        row += n_rows
    fig.suptitle(title)
    return _save(fig, path)


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """counts[i, j] = number of examples of class i predicted as j."""
    counts = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(counts, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return counts


def plot_confusion(y_true, y_pred, class_names, path, title: str = "confusion matrix (test)"):
    """Confusion matrix with counts in the cells, true classes as rows."""
    counts = confusion_matrix(y_true, y_pred, len(class_names))
    plt = _pyplot()
    size = max(4.0, 0.45 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(counts, cmap="Blues")
    ax.set(xticks=range(len(class_names)), yticks=range(len(class_names)), xlabel="predicted", ylabel="true",
           title=f"{title}: accuracy {np.trace(counts) / max(counts.sum(), 1):.3f}")
    ax.set_xticklabels(class_names, rotation=45, ha="right")
    ax.set_yticklabels(class_names)
    threshold = counts.max() / 2 if counts.size else 0
    for (i, j), v in np.ndenumerate(counts):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color="white" if v > threshold else "black")
    return _save(fig, path)


def plot_images(images, path, title: str = "", titles=None, columns: int | None = None, boxes=None,
                cmap: str = "gray", normalise: bool = False):
    """A grid of (H, W) or (H, W, C) images with optional per-image titles and boxes.

    boxes: per image a list of (box, label, colour) with box = (y0, x0, y1, x1) relative to the image size
    (label may be "" and colour any matplotlib colour). normalise: stretch each image to [0, 1] first.
    """
    images = [np.asarray(im) for im in images]
    if not images:
        raise ValueError("plot_images: no images")
    n = len(images)
    cols = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    plt = _pyplot()
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows + 0.5), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        im = images[i]
        im = im[..., 0] if im.ndim == 3 and im.shape[-1] == 1 else im
        ax.imshow(_normalise(im) if normalise else im, cmap=cmap, interpolation="nearest",
                  **({} if normalise or im.ndim == 3 else {"vmin": 0, "vmax": 1}))
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=7)
        h, w = im.shape[:2]
        for box, label, colour in (boxes[i] if boxes is not None else ()):
            y0, x0, y1, x1 = (float(v) for v in box)
            ax.add_patch(plt.Rectangle((x0 * w - 0.5, y0 * h - 0.5), (x1 - x0) * w, (y1 - y0) * h, fill=False,
                                       edgecolor=colour, linewidth=1.2))
            if label:
                ax.text(x0 * w - 0.5, y0 * h - 1.5, str(label), color=colour, fontsize=6)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_series(series, path, title: str = "", xlabel: str = "step", ylabel: str = "", logy: bool = False):
    """Line plot of named series: {name: (x, y)} or {name: y} (x = 0, 1, ...)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, values in series.items():
        x, y = values if isinstance(values, tuple) else (np.arange(len(values)), values)
        ax.plot(np.asarray(x), np.asarray(y), label=str(name))
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, yscale="log" if logy else "linear")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_bars(groups, path, title: str = "", ylabel: str = "", logy: bool = False):
    """Grouped bar chart: groups = {group: {series: value}}; every group shows its series side by side."""
    names = list(groups)
    series = list(dict.fromkeys(s for g in groups.values() for s in g))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(names) * max(len(series), 1) ** 0.5 + 2), 3.8))
    width = 0.8 / max(len(series), 1)
    for k, s in enumerate(series):
        ax.bar(np.arange(len(names)) + (k - (len(series) - 1) / 2) * width,
               [groups[g].get(s, np.nan) for g in names], width, label=str(s))
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=20, ha="right")
    ax.set(ylabel=ylabel, title=title, yscale="log" if logy else "linear")
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    return _save(fig, path)


def plot_decision_regions(panels, x, y, path, title: str = "", resolution: int = 200):
    """Decision regions of 2-D classifiers side by side: panels = {title: predict}, predict mapping (n, 2) points
    to (n,) class ids; the data (x (n, 2), y (n,)) drawn on top."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"plot_decision_regions: x must be (n, 2), got shape {x.shape}")
    margin = 0.1 * (x.max(0) - x.min(0))
    lo, hi = x.min(0) - margin, x.max(0) + margin
    gy, gx = np.meshgrid(np.linspace(lo[1], hi[1], resolution), np.linspace(lo[0], hi[0], resolution), indexing="ij")
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), squeeze=False)
    from matplotlib.colors import ListedColormap  # here: after _pyplot() chose the Agg backend

    classes = int(y.max()) + 1
    colours = ListedColormap([plt.get_cmap("tab10")(i % 10) for i in range(classes)])
    for ax, (name, predict) in zip(axes[0], panels.items()):
        regions = np.asarray(predict(grid)).reshape(gx.shape)
        ax.contourf(gx, gy, regions, levels=np.arange(classes + 1) - 0.5, cmap=colours, alpha=0.25)
        ax.scatter(x[:, 0], x[:, 1], c=y, cmap=colours, s=8, vmin=-0.5, vmax=classes - 0.5, edgecolors="none")
        ax.set(title=name, xticks=[], yticks=[])
    if title:
        fig.suptitle(title, y=1.02)
    return _save(fig, path)


def conv_layer_keys(model) -> list[str]:
    """The keys of a serial model's Conv layers, in order (e.g. ["0_Conv", "3_Conv"] for LeNet-5)."""
    return [k for k, _ in getattr(model.init, "sublayers", ()) if k.endswith("_Conv")]


def feature_maps_of(model, params, state, image, keys) -> list:
    """[(key, maps (H, W, C))] of one image (1, H, W, C) after each of a serial model's layers `keys`."""
    return [(k, np.asarray(truncate(model, k).apply(params, state, image)[0][0])) for k in keys]


def plot_classifier(y_test, predictions, class_names, out_dir, *, metrics=None, title: str = "model", filters=None,
                    feature_maps=None, image=None, image_label=None) -> list[Path]:
    """The standard figures of a trained classifier, written into out_dir: curves.png (from `metrics`, a
    metrics.jsonl path or rows, when given), confusion.png (from the test labels and `predictions`), filters.png
    (an HWIO filter bank, when given) and feature_maps.png (`feature_maps`, see `feature_maps_of`, of `image`,
    whose (true, predicted) class names `image_label` holds). Nothing here runs the model."""
    out = Path(out_dir)
    written = []
    if metrics is not None:
        written.append(plot_curves(metrics, out / "curves.png", title=title))
    written.append(plot_confusion(y_test, predictions, class_names, out / "confusion.png"))
    if filters is not None:
        written.append(plot_filters(filters, out / "filters.png"))
    if feature_maps:
        true_label, predicted = image_label if image_label is not None else (None, None)
        keys = [k for k, _ in feature_maps]
        written.append(plot_feature_maps(feature_maps, out / "feature_maps.png", image=image, true_label=true_label,
                                         predicted_label=predicted,
                                         title="feature maps of " + " and ".join(keys) + " (one test image)"))
    return written


def classifier_figures(model, params, state, x_test, y_test, predictions, class_names, out_dir, *, metrics=None,
                       title: str = "model", image_index: int = 0) -> list[Path]:
    """`plot_classifier` for a serial model: its first conv layer's filters and the maps of its first two conv
    layers for test image `image_index` (the one place that runs the model, on that image)."""
    keys = conv_layer_keys(model)
    image = np.asarray(x_test[image_index:image_index + 1])
    maps = feature_maps_of(model, params, state, image, keys[:2]) if keys else None
    label = (class_names[int(y_test[image_index])], class_names[int(predictions[image_index])])
    return plot_classifier(y_test, predictions, class_names, out_dir, metrics=metrics, title=title,
                           filters=params[keys[0]]["w"] if keys else None, feature_maps=maps,
                           image=image[0] if keys else None, image_label=label)


__all__ = ["read_metrics", "plot_curves", "plot_filters", "plot_feature_maps", "confusion_matrix", "plot_confusion",
           "plot_images", "plot_series", "plot_bars", "plot_decision_regions", "conv_layer_keys", "feature_maps_of",
           "plot_classifier", "classifier_figures"]
