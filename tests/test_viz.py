import numpy as np
import pytest

from funcnn import viz

PNG = b"\x89PNG\r\n\x1a\n"


def test_plots_are_written(tmp_path):
    rows = [{"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5, "val_loss": 0.9, "val_accuracy": 0.6},
            {"epoch": 2, "train_loss": 0.5, "train_accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.7}]
    for path in [viz.plot_curves(rows, tmp_path / "c.png"),
                 viz.plot_filters(np.random.default_rng(0).normal(size=(5, 5, 3, 6)), tmp_path / "f.png"),
                 viz.plot_feature_maps([("a", np.ones((8, 8, 3))), ("b", np.ones((4, 4, 9)))], tmp_path / "m.png",
                                       image=np.ones((16, 16, 1))),
                 viz.plot_confusion([0, 1, 1, 2], [0, 1, 2, 2], ["a", "b", "c"], tmp_path / "x.png")]:
        assert path.read_bytes()[:8] == PNG
    np.testing.assert_array_equal(viz.confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], 3),
                                  [[1, 0, 0], [0, 1, 1], [0, 0, 1]])


def test_image_grid_series_and_bars(tmp_path):
    images = np.random.default_rng(0).uniform(size=(5, 8, 8, 1))
    boxes = [[((0.1, 0.1, 0.5, 0.6), "7", "red")], [], [], [((0, 0, 1, 1), "", "lime")], []]
    for path in [viz.plot_images(images, tmp_path / "g.png", title="t", titles=list("abcde"), boxes=boxes),
                 viz.plot_images(images[:2, ..., 0], tmp_path / "n.png", normalise=True, columns=2),
                 viz.plot_series({"a": [3, 2, 1], "b": ([0, 5], [1, 2])}, tmp_path / "s.png", logy=True),
                 viz.plot_bars({"x": {"p": 1.0, "q": 2.0}, "y": {"p": 3.0}}, tmp_path / "b.png")]:
        assert path.read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match="no images"):
        viz.plot_images([], tmp_path / "e.png")


def test_decision_regions(tmp_path):
    x = np.random.default_rng(0).normal(size=(30, 2))
    y = (x[:, 0] > 0).astype(int)
    path = viz.plot_decision_regions({"sign": lambda p: (p[:, 0] > 0).astype(int)}, x, y, tmp_path / "d.png")
    assert path.read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        viz.plot_decision_regions({}, x[:, :1], y, tmp_path / "e.png")


def test_plot_classifier_writes_the_standard_figures(tmp_path):
    import jax

    from funcnn import models

    model = models.lenet5(3)
    _, params, state = model.init(jax.random.PRNGKey(0), (1, 32, 32, 1))
    x = np.random.default_rng(0).uniform(size=(6, 32, 32, 1)).astype(np.float32)
    rows = [{"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5}]
    y, predictions = np.array([0, 1, 2, 0, 1, 2]), np.array([0, 1, 1, 0, 2, 2])
    written = viz.classifier_figures(model, params, state, x, y, predictions, ["a", "b", "c"], tmp_path, metrics=rows)
    assert sorted(p.name for p in written) == ["confusion.png", "curves.png", "feature_maps.png", "filters.png"]
    assert viz.conv_layer_keys(model) == ["0_Conv", "3_Conv"]
    maps = viz.feature_maps_of(model, params, state, x[:1], ["0_Conv"])
    assert maps[0][0] == "0_Conv" and maps[0][1].shape == (28, 28, 6)
    only = viz.plot_classifier(y, predictions, ["a", "b", "c"], tmp_path / "bare")  # nothing but the confusion matrix
    assert [p.name for p in only] == ["confusion.png"]
