"""The bad-input corpus: every wrong input gets funcnn's own error, of the right class, naming the argument (or the
file) and the shapes involved; never a traceback from inside JAX, NumPy or the standard library, and never a result.

Each row: (id, a call, the error class, a regex the message must match). The regexes name the argument on purpose.
Where an odd input has a legitimate result (NaN propagates, an empty batch gives an empty output), the tests at the
end say so.
"""

import gzip
import json
import re
import pickle
import tarfile
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import funcnn as fn
from funcnn import cli, data, layers as L, models, train
from funcnn.data import files
from funcnn.io import CorruptFileError

KEY = jax.random.PRNGKey(0)
X4 = jnp.ones((1, 4, 4, 1))
W2 = jnp.ones((2, 2, 1, 1))


def _init(layer, shape):
    return lambda: layer.init(KEY, shape)


def _apply(layer, shape, train_mode=False, rng=None):
    def call():
        _, params, state = layer.init(KEY, shape)
        return layer.apply(params, state, jnp.ones(shape), train=train_mode, rng=rng)

    return call


PRIMITIVES = [
    ("conv2d x rank", lambda: fn.conv2d(jnp.ones((4, 4, 1)), W2), ValueError, r"conv2d: x must have rank 4 \(NHWC\), got shape \(4, 4, 1\)"),
    ("conv2d w rank", lambda: fn.conv2d(X4, jnp.ones((2, 2, 1))), ValueError, r"conv2d: w must have rank 4 \(HWIO\)"),
    ("conv2d channels", lambda: fn.conv2d(jnp.ones((1, 4, 4, 3)), jnp.ones((2, 2, 2, 1))), ValueError, r"channel mismatch: x has 3 channels .*w expects 2"),
    ("conv2d groups 0", lambda: fn.conv2d(X4, W2, groups=0), ValueError, r"groups must be an int >= 1, got 0"),
    ("conv2d groups bool", lambda: fn.conv2d(X4, W2, groups=True), ValueError, r"groups must be an int >= 1, got True"),
    ("conv2d groups divide", lambda: fn.conv2d(jnp.ones((1, 4, 4, 4)), jnp.ones((2, 2, 2, 3)), groups=2), ValueError, r"groups=2 must divide .*w shape \(2, 2, 2, 3\)"),
    ("conv2d kernel too big", lambda: fn.conv2d(X4, jnp.ones((5, 5, 1, 1))), ValueError, r"kernel 5 is larger than the padded input 4\+0\+0=4"),
    ("conv2d dilated kernel", lambda: fn.conv2d(X4, jnp.ones((3, 3, 1, 1)), dilation=2), ValueError, r"dilated kernel .* 5 is larger"),
    ("conv2d stride 0", lambda: fn.conv2d(X4, W2, stride=0), ValueError, r"conv2d: stride must be >= 1, got 0"),
    ("conv2d stride negative", lambda: fn.conv2d(X4, W2, stride=(1, -1)), ValueError, r"conv2d: stride must be >= 1"),
    ("conv2d stride float", lambda: fn.conv2d(X4, W2, stride=1.5), ValueError, r"conv2d: stride must be an int or a sequence of 2 ints, got 1.5"),
    ("conv2d stride string", lambda: fn.conv2d(X4, W2, stride="2"), ValueError, r"conv2d: stride must be an int or a sequence"),
    ("conv2d stride length", lambda: fn.conv2d(X4, W2, stride=(1, 2, 3)), ValueError, r"conv2d: stride must have 2 entries"),
    ("conv2d dilation 0", lambda: fn.conv2d(X4, W2, dilation=(1, 0)), ValueError, r"conv2d: dilation must be >= 1"),
    ("conv2d padding negative", lambda: fn.conv2d(X4, W2, padding=-1), ValueError, r"conv2d: padding must be non-negative"),
    ("conv2d padding unknown", lambda: fn.conv2d(X4, W2, padding="FULL"), ValueError, r"conv2d: .*unknown string 'FULL'"),
    ("conv2d padding length", lambda: fn.conv2d(X4, W2, padding=(1, 2, 3)), ValueError, r"conv2d: padding must have 2 entries"),
    ("conv2d padding triple", lambda: fn.conv2d(X4, W2, padding=((1, 2, 3), (0, 0))), ValueError, r"conv2d: each padding entry must be an int or a \(lo, hi\) pair"),
    ("conv2d padding float", lambda: fn.conv2d(X4, W2, padding=1.5), ValueError, r"conv2d: padding must be a string, an int or a sequence"),
    ("conv2d zero in-channels", lambda: fn.conv2d(jnp.ones((1, 4, 4, 0)), jnp.ones((2, 2, 0, 1))), ValueError, r"conv2d: channel counts must be >= 1, got x shape \(1, 4, 4, 0\)"),
    ("conv2d zero out-channels", lambda: fn.conv2d(X4, jnp.ones((2, 2, 1, 0))), ValueError, r"conv2d: channel counts must be >= 1.*C_out = 0"),
    ("conv2d bias shape", lambda: fn.conv2d(X4, jnp.ones((2, 2, 1, 2)), jnp.ones(3)), ValueError, r"conv2d: b must have shape \(2,\)"),
    ("conv2d integer x", lambda: fn.conv2d(jnp.ones((1, 4, 4, 1), int), jnp.ones((2, 2, 1, 1), int)), TypeError, r"conv2d: expected floating-point inputs, got dtype int"),
    ("conv2d string x", lambda: fn.conv2d("abc", W2), TypeError, r"conv2d: x must be an array of numbers, got str"),
    ("conv2d None w", lambda: fn.conv2d(X4, None), TypeError, r"conv2d: w must be an array of numbers, got NoneType"),
    ("conv1d x rank", lambda: fn.conv1d(X4, jnp.ones((2, 1, 1))), ValueError, r"conv1d: x must have rank 3 \(NWC\)"),
    ("conv_transpose2d channels", lambda: fn.conv_transpose2d(jnp.ones((1, 4, 4, 3)), jnp.ones((2, 2, 1, 2))), ValueError, r"conv_transpose2d: channel mismatch: y has 3 channels"),
    ("conv_transpose2d output_padding", lambda: fn.conv_transpose2d(jnp.ones((1, 4, 4, 2)), jnp.ones((2, 2, 1, 2)), stride=2, output_padding=2), ValueError, r"output_padding must be < stride"),
    ("conv_transpose2d output_padding SAME", lambda: fn.conv_transpose2d(jnp.ones((1, 4, 4, 2)), jnp.ones((2, 2, 1, 2)), stride=2, padding="SAME", output_padding=1), ValueError, r'output_padding must be 0 with padding="SAME"'),
    ("conv_transpose2d output_padding negative", lambda: fn.conv_transpose2d(jnp.ones((1, 4, 4, 2)), jnp.ones((2, 2, 1, 2)), stride=2, output_padding=-1), ValueError, r"output_padding must be >= 0"),
    ("conv_transpose2d crops all", lambda: fn.conv_transpose2d(jnp.ones((1, 1, 1, 2)), jnp.ones((1, 1, 1, 2)), padding=1), ValueError, r"crops the whole output"),
    ("conv_transpose1d y rank", lambda: fn.conv_transpose1d(X4, jnp.ones((2, 1, 1))), ValueError, r"conv_transpose1d: y must have rank 3 \(NWC\)"),
    ("max_pool2d rank", lambda: fn.max_pool2d(jnp.ones((4, 4, 1)), 2), ValueError, r"max_pool2d: x must have rank 4 \(NHWC\)"),
    ("max_pool2d window too big", lambda: fn.max_pool2d(X4, 5), ValueError, r"max_pool2d: window 5 is larger than the padded input 4\+0\+0=4"),
    ("max_pool2d window 0", lambda: fn.max_pool2d(X4, 0), ValueError, r"max_pool2d: window must be >= 1, got 0"),
    ("max_unpool2d index out of range", lambda: fn.max_unpool2d(jnp.ones((1, 2, 2, 1)), jnp.array([[[[0], [1]], [[16], [3]]]]), 2), ValueError, r"max_unpool2d: indices must lie in \[0, 16\), the positions of an output of spatial size \(4, 4\); got 16 at flat position 2"),
    ("max_unpool2d negative index", lambda: fn.max_unpool2d(jnp.ones((1, 2, 2, 1)), -jnp.ones((1, 2, 2, 1), int), 2), ValueError, r"max_unpool2d: indices must lie in \[0, 16\).*got -1 at flat position 0 \(4 out of range"),
    ("avg_pool2d stride 0", lambda: fn.avg_pool2d(X4, 2, 0), ValueError, r"avg_pool2d: stride must be >= 1, got 0"),
    ("max_pool2d padding >= window", lambda: fn.max_pool2d(X4, 2, padding=2), ValueError, r"max_pool2d: padding .* must be smaller than the window"),
    ("max_pool2d padding unknown", lambda: fn.max_pool2d(X4, 2, padding="same-ish"), ValueError, r"max_pool2d: .*unknown string 'same-ish'"),
    ("avg_pool2d padding negative", lambda: fn.avg_pool2d(X4, 2, padding=-1), ValueError, r"avg_pool2d: padding must be non-negative"),
    ("lp_pool2d p 0", lambda: fn.lp_pool2d(X4, 0, 2), ValueError, r"lp_pool2d: p must be a finite number > 0, got 0"),
    ("lp_pool2d p negative", lambda: fn.lp_pool2d(X4, -1.0, 2), ValueError, r"lp_pool2d: p must be a finite number > 0"),
    ("lp_pool2d p inf", lambda: fn.lp_pool2d(X4, float("inf"), 2), ValueError, r"lp_pool2d: p must be a finite number > 0"),
    ("lp_pool2d p string", lambda: fn.lp_pool2d(X4, "2", 2), ValueError, r"lp_pool2d: p must be a Python number"),
    ("lp_pool2d p bool", lambda: fn.lp_pool2d(X4, True, 2), ValueError, r"lp_pool2d: p must be a Python number"),
    ("lp_pool1d rank", lambda: fn.lp_pool1d(X4, 2.0, 2), ValueError, r"lp_pool1d: x must have rank 3 \(NWC\)"),
    ("max_pool2d empty axis", lambda: fn.max_pool2d(jnp.ones((1, 0, 4, 1)), 1), ValueError, r"max_pool2d: x has an empty spatial axis \(shape \(1, 0, 4, 1\)\)"),
    ("avg_pool1d empty axis", lambda: fn.avg_pool1d(jnp.ones((2, 0, 3)), 1), ValueError, r"avg_pool1d: x has an empty spatial axis"),
    ("global_avg_pool2d empty axis", lambda: fn.global_avg_pool2d(jnp.ones((2, 3, 0, 4))), ValueError, r"global_avg_pool2d: x has an empty spatial axis"),
    ("global_avg_pool2d rank", lambda: fn.global_avg_pool2d(jnp.ones((2, 3, 4))), ValueError, r"global_avg_pool2d: x must have rank 4"),
    ("global_avg_pool1d rank", lambda: fn.global_avg_pool1d(X4), ValueError, r"global_avg_pool1d: x must have rank 3"),
    ("max_pool1d rank", lambda: fn.max_pool1d(X4, 2), ValueError, r"max_pool1d: x must have rank 3"),
    ("avg_pool2d integer", lambda: fn.avg_pool2d(jnp.ones((1, 4, 4, 1), int), 2), TypeError, r"avg_pool2d: x must be floating-point .*got dtype int"),
    ("max_pool2d list of strings", lambda: fn.max_pool2d([["a"]], 1), TypeError, r"max_pool2d: x must be an array of numbers"),
    ("dense features", lambda: fn.dense(jnp.ones((2, 3)), jnp.ones((4, 5))), ValueError, r"dense: x has 3 features \(shape \(2, 3\)\) but w expects 4"),
    ("dense w rank", lambda: fn.dense(jnp.ones((2, 3)), jnp.ones(3)), ValueError, r"dense: x must have rank >= 1 and w rank 2"),
    ("dense bias", lambda: fn.dense(jnp.ones((2, 3)), jnp.ones((3, 5)), jnp.ones(4)), ValueError, r"dense: b must have shape \(5,\)"),
    ("dense string", lambda: fn.dense("x", jnp.ones((3, 5))), TypeError, r"dense: x must be an array of numbers"),
    ("relu string", lambda: fn.relu("abc"), TypeError, r"relu: z must be an array of numbers, got str"),
    ("sigmoid None", lambda: fn.sigmoid(None), TypeError, r"sigmoid: z must be an array of numbers, got NoneType"),
    ("tanh integer", lambda: fn.tanh(jnp.arange(3)), TypeError, r"tanh: z must be floating-point .*got dtype int"),
    ("relu dict", lambda: fn.relu({"a": 1.0}), TypeError, r"relu: z must be an array of numbers, got dict"),
    ("softmax axis", lambda: fn.softmax(jnp.ones((2, 3)), axis=5), ValueError, r"softmax: axis must be an int in \[-2, 2\) for z of shape \(2, 3\), got 5"),
    ("log_softmax axis string", lambda: fn.log_softmax(jnp.ones((2, 3)), axis="0"), ValueError, r"log_softmax: axis must be an int"),
    ("cross-entropy float labels", lambda: fn.softmax_cross_entropy(jnp.ones((2, 3)), jnp.ones(2)), TypeError, r"softmax_cross_entropy: labels must be integers"),
    ("cross-entropy label shape", lambda: fn.softmax_cross_entropy(jnp.ones((2, 3)), jnp.zeros(3, int)), ValueError, r"softmax_cross_entropy: labels shape \(3,\) must equal logits shape \(2, 3\)"),
    ("cross-entropy label range", lambda: fn.softmax_cross_entropy(jnp.ones((2, 3)), jnp.array([0, 3])), ValueError, r"softmax_cross_entropy: labels must lie in \[0, 3\), got \[3\]"),
    ("cross-entropy integer logits", lambda: fn.softmax_cross_entropy(jnp.ones((2, 3), int), jnp.zeros(2, int)), TypeError, r"softmax_cross_entropy: logits must be floating-point"),
]

LAYERS_AND_MODELS = [
    ("Dense 0", lambda: L.Dense(0), ValueError, r"Dense: features must be a positive int, got 0"),
    ("Dense float", lambda: L.Dense(2.5), ValueError, r"Dense: features must be a positive int, got 2.5"),
    ("Conv out_channels 0", lambda: L.Conv(0, 3), ValueError, r"Conv: out_channels must be a positive int, got 0"),
    ("Conv groups 0", lambda: L.Conv(4, 3, groups=0), ValueError, r"Conv: groups must be a positive int, got 0"),
    ("Conv input rank", _init(L.Conv(4, 3), (8, 8)), ValueError, r"Conv: input must be \(N, W, C\), \(N, H, W, C\) or \(N, D, H, W, C\), got shape \(8, 8\)"),
    ("Conv kernel too big", _init(L.Conv(4, 5), (1, 3, 3, 1)), ValueError, r"Conv: kernel 5 is larger than the padded input 3\+0\+0=3"),
    ("Conv groups divide", _init(L.Conv(4, 3, groups=2), (1, 8, 8, 3)), ValueError, r"Conv: groups=2 must divide the input channels 3"),
    ("Conv stride 0", _init(L.Conv(4, 3, stride=0), (1, 8, 8, 3)), ValueError, r"Conv: stride must be >= 1, got 0"),
    ("DepthwiseConv multiplier", lambda: L.DepthwiseConv(3, multiplier=0), ValueError, r"DepthwiseConv: multiplier must be a positive int"),
    ("ConvTranspose output_padding", _init(L.ConvTranspose(2, 3, stride=2, output_padding=2), (1, 4, 4, 1)), ValueError, r"ConvTranspose: output_padding must be < stride"),
    ("Dropout rate 1", lambda: L.Dropout(1.0), ValueError, r"Dropout: rate is the drop probability and must lie in \[0, 1\), got 1.0"),
    ("Dropout rate negative", lambda: L.Dropout(-0.1), ValueError, r"Dropout: rate .* must lie in \[0, 1\)"),
    ("Dropout without rng", _apply(L.Dropout(0.5), (2, 3), train_mode=True), ValueError, r"Dropout: apply\(..., train=True\) needs an explicit PRNG key"),
    ("BatchNorm momentum", lambda: L.BatchNorm(momentum=1.0), ValueError, r"BatchNorm: momentum must lie in \[0, 1\), got 1.0"),
    ("BatchNorm epsilon", lambda: L.BatchNorm(epsilon=0), ValueError, r"BatchNorm: epsilon must be > 0, got 0"),
    ("BatchNorm empty batch", _apply(L.BatchNorm(), (0, 4, 4, 3), train_mode=True), ValueError, r"BatchNorm: train=True needs at least one example .*shape \(0, 4, 4, 3\)"),
    ("MaxPool window too big", _init(L.MaxPool(3), (1, 2, 2, 1)), ValueError, r"MaxPool: window 3 is larger than the padded input 2\+0\+0=2"),
    ("AvgPool stride 0", _init(L.AvgPool(2, 0), (1, 4, 4, 1)), ValueError, r"AvgPool: stride must be >= 1"),
    ("TransformInvariantConv transforms", lambda: L.TransformInvariantConv(4, 3, transforms="rot45"), ValueError, r"TransformInvariantConv: transforms must be one of"),
    ("TransformInvariantConv kernel", _init(L.TransformInvariantConv(4, (3, 5)), (1, 8, 8, 1)), ValueError, r"TransformInvariantConv: rotations need a square kernel, got \(3, 5\)"),
    ("TransformInvariantConv rank", _init(L.TransformInvariantConv(4, 3), (1, 8, 1)), ValueError, r"TransformInvariantConv: rotations act on images"),
    ("truncate non-serial", lambda: L.truncate(L.Relu(), "0_Relu"), ValueError, r"truncate: the model is not a serial\(\) combination"),
    ("truncate unknown key", lambda: L.truncate(models.lenet5(), "9_Nope"), ValueError, r"truncate: no layer '9_Nope'; the model's layers are 0_Conv"),
    ("parallel inputs", _init(L.parallel(L.Relu(), L.Relu()), ((1, 2),)), ValueError, r"parallel: expected 2 inputs"),
    ("fan_in_sum shapes", _init(L.serial(L.fan_out(2), L.parallel(L.Dense(3), L.Dense(4)), L.fan_in_sum()), (1, 2)), ValueError, r"fan_in_sum: input shapes must agree"),
    ("unknown model", lambda: models.get("lenet6"), ValueError, r"unknown model 'lenet6'; known models: alexnet"),
    ("lenet5 input too small", _init(models.lenet5(), (1, 8, 8, 1)), ValueError, r"Conv: kernel 5 is larger than the padded input 2\+0\+0=2 on spatial axis 0 \(input shape \(1, 2, 2, 6\)"),
    ("mobilenet width", lambda: models.mobilenet_v1(10, width=-1), ValueError, r"mobilenet_v1: width must be a finite number > 0"),
    ("resnet20 no classes", lambda: models.resnet20(0), ValueError, r"Dense: features must be a positive int, got 0"),
]


def _saved(tmp_path, tree=None, name="t.npz"):
    path = tmp_path / name
    fn.save(path, {"w": jnp.ones((2, 3))} if tree is None else tree)
    return path


def _write(path, content: bytes):
    path.write_bytes(content)
    return path


def _idx_dir(tmp_path, labels=None, n_labels=None):
    directory = tmp_path / "mnist"
    directory.mkdir(exist_ok=True)
    images = np.zeros((4, 28, 28), np.uint8)
    labels = np.array([0, 1, 2, 3] if labels is None else labels, np.uint8)[: n_labels or None]
    for stem, array in [("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels),
                        ("t10k-images-idx3-ubyte", images), ("t10k-labels-idx1-ubyte", np.array([0, 1, 2, 3],
                                                                                                  np.uint8))]:
        files.write_idx(directory / stem, array)
    return directory


def _cifar_archive(tmp_path, labels):
    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            blob = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": labels})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            import io

            tar.addfile(info, io.BytesIO(blob))
    return tmp_path


def _class_model():
    return L.serial(L.Flatten(), L.Dense(10))


def _fit(**kw):
    model = _class_model()
    _, params, state = model.init(KEY, (1, 4, 4, 1))
    x = kw.pop("x", np.ones((64, 4, 4, 1), np.float32))
    y = kw.pop("y", np.arange(64) % 10)
    optimizer = kw.pop("optimizer", train.adam())
    val = kw.pop("val", None)
    settings = dict(key=KEY, epochs=1, batch_size=16, progress=False)
    settings.update(kw)
    return lambda: train.fit(model.apply, params, state, optimizer, (x, y), val, **settings)


FILES_DATA_FIT = [
    ("save string leaf", lambda p: fn.save(p / "s.npz", {"name": "lenet"}), TypeError, r"funcnn.save: .*s.npz: the leaf at \['name'\] is a str"),
    ("save object array", lambda p: fn.save(p / "o.npz", [np.array([object()])]), TypeError, r"funcnn.save: .*o.npz: the leaf at \[0\] has dtype object"),
    ("load missing", lambda p: fn.load(p / "nope.npz"), FileNotFoundError, r"funcnn.load: no such file: .*nope.npz"),
    ("load truncated", lambda p: fn.load(_write(p / "cut.npz", _saved(p).read_bytes()[:200])), CorruptFileError, r"funcnn.load: .*cut.npz is not a complete funcnn file"),
    ("load foreign npz", lambda p: (np.savez(p / "f.npz", a=np.ones(2)), fn.load(p / "f.npz")), CorruptFileError, r"f.npz is an .npz archive but not one written by funcnn.save"),
    ("load garbage", lambda p: fn.load(_write(p / "g.npz", b"not a zip at all")), CorruptFileError, r"g.npz is not a complete funcnn file"),
    ("load like shape", lambda p: fn.load(_saved(p), like={"w": jnp.ones((3, 2))}), CorruptFileError, r"t.npz: the array at \['w'\] has shape \(2, 3\), the template expects \(3, 2\)"),
    ("load like dtype", lambda p: fn.load(_saved(p), like={"w": jnp.ones((2, 3), jnp.int32)}), CorruptFileError, r"t.npz: the array at \['w'\] has dtype float(32|64), the template expects int32"),
    ("load like structure", lambda p: fn.load(_saved(p), like={"w": jnp.ones((2, 3)), "b": jnp.ones(3)}), CorruptFileError, r"t.npz holds 1 arrays but the template has 2"),
    ("load custom nodes", lambda p: fn.load(_saved(p, {"s": optax.ScaleByAdamState(jnp.zeros(()), jnp.ones(2), jnp.ones(2))})), ValueError, r"custom node types .*pass like="),
    ("read_idx missing", lambda p: files.read_idx(p / "none-idx"), files.DataError, r"missing data file: .*none-idx"),
    ("read_idx bad magic", lambda p: files.read_idx(_write(p / "bad-idx", b"\x01\x02\x03\x04rest")), files.DataError, r"bad-idx is not an IDX file: bad magic number 01020304"),
    ("read_idx truncated", lambda p: files.read_idx(_write(p / "short-idx", bytes([0, 0, 8, 1, 0, 0, 0, 9, 1, 2]))), files.DataError, r"short-idx is truncated or has trailing bytes"),
    ("mnist label 255", lambda p: data.mnist(_idx_dir(p, labels=[0, 1, 255, 3])), files.DataError, r"train-labels-idx1-ubyte: label 255 at index 2 is outside \[0, 10\)"),
    ("mnist count mismatch", lambda p: data.mnist(_idx_dir(p, n_labels=3)), files.DataError, r"train-images-idx3-ubyte / .*train-labels-idx1-ubyte: images of shape \(4, 28, 28\) and 3 labels do not match"),
    ("mnist missing files", lambda p: data.mnist(p), files.DataError, r"mnist: missing data files in .*: train-images-idx3-ubyte.gz.* --download"),
    ("cifar label 99", lambda p: data.cifar10(_cifar_archive(p, [0, 99])), files.DataError, r"cifar-10-python.tar.gz \(training batches\): label 99 at index 1 is outside \[0, 10\)"),
    ("cifar missing", lambda p: data.cifar10(p), files.DataError, r"cifar10: missing data file in .*cifar-10-python.tar.gz.*--download"),
    ("cifar hostile pickle", lambda p: files.read_cifar_batch(pickle.dumps(print), "evil"), files.DataError, r"evil is not a valid CIFAR-10 batch: forbidden global"),
    ("load unknown dataset", lambda p: data.load("imagenet"), ValueError, r"unknown dataset 'imagenet'; known datasets: cifar10"),
    ("digits data_dir", lambda p: data.load("digits", p), ValueError, r"dataset 'digits' ships with funcnn's dependencies and takes no data directory"),
    ("digits download", lambda p: data.load("digits", download=True), ValueError, r"dataset 'digits' ships with funcnn's dependencies: there is nothing to download"),
    ("fetch checksum", lambda p: files.fetch("https://example.invalid/x.gz", "00" * 32, _write(p / "x.gz", b"data").parent), files.DataError, r"x.gz has SHA-256 .*, expected 0000"),
    ("check_labels float", lambda p: data.check_labels(np.ones(3), 10, "my labels"), files.DataError, r"my labels: labels must be integers \(class indices\), got dtype float64"),
    ("check_labels 2-D", lambda p: data.check_labels(np.ones((3, 2), int), 10, "my labels"), files.DataError, r"my labels: labels must be a 1-D array"),
    ("fit epochs 0", lambda p: _fit(epochs=0)(), ValueError, r"fit: epochs must be an int >= 1, got 0"),
    ("fit batch_size 0", lambda p: _fit(batch_size=0)(), ValueError, r"fit: batch_size must be an int >= 1, got 0"),
    ("fit batch too big", lambda p: _fit(batch_size=65)(), ValueError, r"fit: batch_size=65 is larger than the 64 training examples"),
    ("fit checkpoint_every 0", lambda p: _fit(checkpoint_every=0)(), ValueError, r"fit: checkpoint_every must be an int >= 1, got 0"),
    ("fit early_stopping 0", lambda p: _fit(early_stopping=0)(), ValueError, r"fit: early_stopping must be an int >= 1, got 0"),
    ("fit plateau 0", lambda p: _fit(plateau_patience=0)(), ValueError, r"fit: plateau_patience must be an int >= 1, got 0"),
    ("fit max_steps 0", lambda p: _fit(max_steps=0)(), ValueError, r"fit: max_steps must be an int >= 1, got 0"),
    ("fit label out of range", lambda p: _fit(y=np.arange(64) % 11)(), ValueError, r"fit: train label 10 at index 10 is outside \[0, 10\), the model's 10 classes"),
    ("fit negative label", lambda p: _fit(y=np.arange(64) % 10 - 1)(), ValueError, r"fit: train label -1 at index 0 is outside \[0, 10\)"),
    ("fit float labels", lambda p: _fit(y=np.ones(64, np.float32))(), ValueError, r"fit: train labels must be integer class indices for the classification loss"),
    ("fit length mismatch", lambda p: _fit(y=np.arange(63) % 10)(), ValueError, r"fit: train has 64 inputs but 63 labels"),
    ("fit resume no checkpoint", lambda p: _fit(resume=True, out_dir=p / "r")(), FileNotFoundError, r"fit: resume=True but there is no checkpoint to resume: .*checkpoint.npz does not exist"),
    ("fit resume no out_dir", lambda p: _fit(resume=True)(), ValueError, r"fit: resume=True needs out_dir"),
    ("fit early stopping no val", lambda p: _fit(early_stopping=2)(), ValueError, r"fit: early_stopping and plateau_patience monitor validation accuracy: pass val="),
    ("fit zero learning rate", lambda p: _fit(optimizer=optax.inject_hyperparams(optax.sgd)(learning_rate=0.0))(), ValueError, r"fit: the optimiser's learning_rate must be a finite number > 0, got 0.0"),
    ("adam negative lr", lambda p: train.adam(-1), ValueError, r"adam: learning_rate must be a number > 0, got -1"),
    ("sgd momentum", lambda p: train.sgd(0.1, momentum=1.5), ValueError, r"sgd: momentum must be a number in \[0, 1\), got 1.5"),
    ("sgd weight decay", lambda p: train.sgd(0.1, weight_decay=-1e-4), ValueError, r"sgd: weight_decay must be a number >= 0"),
    ("augmentation scale", lambda p: data.augment.lecture_augmentations(-1), ValueError, r"lecture_augmentations: scale must be a finite number >= 0"),
    ("verify unknown check", lambda p: fn.verify.check_vjp(fn.relu, jnp.ones(2), checks=("speed",)), ValueError, r"check_vjp: unknown checks \['speed'\]"),
    ("verify no check", lambda p: fn.verify.check_vjp(fn.relu, jnp.ones(2), checks=()), ValueError, r"check_vjp: checks is empty, so nothing would be checked; name at least one of forward, "),
]

def _lenet():
    model = models.get("lenet5")(10)
    _, params, state = model.init(KEY, (1, 32, 32, 1))
    return model, params, state


def _exported(tmp_path):
    model, params, state = _lenet()
    path = tmp_path / "m.jaxexport"
    fn.deploy.write(fn.deploy.export(model.apply, params, state, (32, 32, 1)), path)
    return path


def _replicas(**kw):
    keys = jax.random.split(KEY, 2)
    model = _class_model()
    params, state = train.init_replicas(model.init, (1, 4, 4, 1), keys)
    x, y = np.ones((32, 4, 4, 1), np.float32), np.arange(32) % 10
    split = kw.pop("train", (x, y))
    settings = dict(keys=keys, epochs=1, batch_size=8, progress=False)
    settings.update(kw)
    return lambda: train.fit_replicas(model.apply, params, state, train.adam(), split, **settings)


def _twice(tmp_path, **kw):
    _fit(out_dir=tmp_path / "twice")()
    return _fit(out_dir=tmp_path / "twice", **kw)()


def _hvp(v):
    return lambda p: fn.curvature.hvp(lambda q: jnp.sum(q["w"] ** 2), {"w": jnp.ones(2)}, v)


# the newer glue: interop, export and deploy, io, the checker, fit / run / fit_replicas, curvature (issue 25)
GLUE = [
    ("load like renamed key", lambda p: fn.load(_saved(p), like={"v": jnp.ones((2, 3))}), CorruptFileError, r"t.npz: leaf 0 is \['w'\] in the file but \['v'\] in the template: the key paths differ"),
    ("load_flat foreign", lambda p: (np.savez(p / "f.npz", a=np.ones(2)), fn.io.load_flat(p / "f.npz")), CorruptFileError, r"f.npz is an .npz archive but not one written by funcnn.save"),
    ("load_flat missing", lambda p: fn.io.load_flat(p / "none.npz"), FileNotFoundError, r"load_flat: no such file: .*none.npz"),
    ("save into a directory", lambda p: fn.save(p, {"w": jnp.ones(2)}), IsADirectoryError, r"funcnn.save: .* is a directory; give a file name"),
    ("deploy.read missing", lambda p: fn.deploy.read(p / "none.jaxexport"), FileNotFoundError, r"deploy.read: no such file: .*none.jaxexport"),
    ("deploy.read an npz", lambda p: fn.deploy.read(_saved(p)), fn.deploy.NotAnExportError, r"deploy.read: .*t.npz is not a serialised jax.export"),
    ("deploy.read garbage", lambda p: fn.deploy.read(_write(p / "g.jaxexport", b"garbage")), fn.deploy.NotAnExportError, r"g.jaxexport is not a serialised jax.export"),
    ("deploy.read truncated", lambda p: fn.deploy.read(_write(p / "t.jaxexport", _exported(p).read_bytes()[:100])), fn.deploy.NotAnExportError, r"t.jaxexport is not a serialised jax.export"),
    ("export platform", lambda p: fn.deploy.export(*_lenet()[0:1], *_lenet()[1:], (32, 32, 1), platforms=("banana",)), ValueError, r"funcnn.export: platforms must be among cpu, cuda"),
    ("export empty platforms", lambda p: fn.deploy.export(_lenet()[0].apply, *_lenet()[1:], (32, 32, 1), platforms=()), ValueError, r"funcnn.export: platforms must be among"),
    ("export shape 0", lambda p: fn.deploy.export(_lenet()[0].apply, *_lenet()[1:], (0, 32, 1)), ValueError, r"funcnn.export: input_shape is one example's shape"),
    ("export shape rank", lambda p: fn.deploy.export(_lenet()[0].apply, *_lenet()[1:], (1, 32, 32, 1)), ValueError, r"funcnn.export: the model does not take inputs of shape \(batch, \*\(1, 32, 32, 1\)\)"),
    ("export too small", lambda p: fn.deploy.export(_lenet()[0].apply, *_lenet()[1:], (4, 4, 1)), ValueError, r"funcnn.export: the model does not take inputs .*kernel 5 is larger"),
    ("deploy.write a directory", lambda p: fn.deploy.write(None, p), IsADirectoryError, r"funcnn.export: the output .* is a directory"),
    ("interop unknown model", lambda p: fn.interop.from_torch("lenet6", {}), ValueError, r"interop: no PyTorch layout for model 'lenet6'; supported: lenet5"),
    ("interop to_torch unknown", lambda p: fn.interop.to_torch("lenet6", *_lenet()[1:]), ValueError, r"interop: no PyTorch layout for model 'lenet6'"),
    ("interop empty state dict", lambda p: fn.interop.from_torch("lenet5", {}), fn.interop.StateDictMismatch, r"interop: the state dict has no '11.weight', the classifier of funcnn's lenet5"),
    ("interop not a dict", lambda p: fn.interop.from_torch("lenet5", 3), TypeError, r"interop: state_dict must be a dict of tensors \(a state dict\), got int"),
    ("interop a list", lambda p: fn.interop.from_torch("lenet5", [np.ones(2)]), TypeError, r"interop: state_dict must be a dict of tensors"),
    ("interop other model's params", lambda p: fn.interop.to_torch("resnet20", *_lenet()[1:]), fn.interop.StateDictMismatch, r"interop: params do not fit funcnn's resnet20: missing"),
    ("interop read missing", lambda p: fn.interop.read_state_dict(p / "none.safetensors"), FileNotFoundError, r"interop: no such file: .*none.safetensors"),
    ("predict batch 0", lambda p: train.predict(_lenet()[0].apply, *_lenet()[1:], jnp.ones((2, 32, 32, 1)), batch_size=0), ValueError, r"predict: batch_size must be an int >= 1, got 0"),
    ("predict empty", lambda p: train.predict(_lenet()[0].apply, *_lenet()[1:], jnp.ones((0, 32, 32, 1))), ValueError, r"predict: x holds no example \(shape \(0, 32, 32, 1\)\)"),
    ("predict rank", lambda p: train.predict(_lenet()[0].apply, *_lenet()[1:], jnp.ones((2, 2, 32, 32, 1))), ValueError, r"Conv: the input has 3 spatial axes \(shape \(2, 2, 32, 32, 1\)\) but the layer's filter w has 2 \(shape \(5, 5, 1, 6\)\)"),
    ("evaluate lengths", lambda p: train.evaluate(train.make_eval_step(_lenet()[0].apply), *_lenet()[1:], jnp.ones((4, 32, 32, 1)), jnp.zeros(3, int)), ValueError, r"x and y must have the same length, got shapes"),
    ("init_replicas one key", lambda p: train.init_replicas(_class_model().init, (1, 4, 4, 1), KEY[0]), ValueError, r"init_replicas: keys must be a stack of PRNG keys, one per replica"),
    ("init_replicas floats", lambda p: train.init_replicas(_class_model().init, (1, 4, 4, 1), jnp.ones(3)), ValueError, r"init_replicas: keys must be a stack of PRNG keys.*shape \(3,\)"),
    ("fit_replicas train not a pair", lambda p: _replicas(train="x")(), ValueError, r"fit_replicas: train must be a pair \(x, y\), got str"),
    ("fit_replicas epochs 0", lambda p: _replicas(epochs=0)(), ValueError, r"fit_replicas: epochs must be an int >= 1, got 0"),
    ("fit_replicas batch 0", lambda p: _replicas(batch_size=0)(), ValueError, r"fit_replicas: batch_size must be an int >= 1, got 0"),
    ("fit_replicas batch too big", lambda p: _replicas(batch_size=33)(), ValueError, r"fit_replicas: 32 training examples, fewer than batch_size=33"),
    ("fit_replicas keys mismatch", lambda p: _replicas(keys=jax.random.split(KEY, 3))(), ValueError, r"fit_replicas: 3 keys but stacked params"),
    ("fit_replicas unknown hyperparameter", lambda p: _replicas(hyperparams={"momentum": [0.9, 0.8]})(), ValueError, r"init_replica_optimizer: the optimiser has no injected hyperparameter 'momentum'"),
    ("fit twice into one out_dir", lambda p: _twice(p), ValueError, r"fit: out_dir .*twice already holds a run \(checkpoint.npz, metrics.jsonl.*pass resume=True to continue it, overwrite=True"),
    ("fit resume and overwrite", lambda p: _fit(out_dir=p / "x", resume=True, overwrite=True)(), ValueError, r"fit: resume=True continues the run in out_dir and overwrite=True deletes it"),
    ("fit resume another batch size", lambda p: _twice(p, resume=True, batch_size=8), ValueError, r"fit: the checkpoint in .*twice was written with batch_size=16, resuming with 8"),
    ("fit resume another key", lambda p: _twice(p, resume=True, key=jax.random.PRNGKey(9)), ValueError, r"fit: the checkpoint in .*twice was written with another key"),
    ("fit resume another model", lambda p: (_fit(out_dir=p / "m")(), _fit(out_dir=p / "m", resume=True, optimizer=train.sgd())())[1], ValueError, r"fit: the checkpoint in .*m does not fit this run's model and optimiser: .*checkpoint.npz holds 23 arrays but the template has 20"),
    ("fit train not a pair", lambda p: train.fit(_class_model().apply, *_class_model().init(KEY, (1, 4, 4, 1))[1:], train.adam(), np.ones((4, 4, 4, 1)), key=KEY), ValueError, r"fit: train must be a pair \(x, y\), got ndarray"),
    ("fit empty train", lambda p: _fit(x=np.ones((0, 4, 4, 1), np.float32), y=np.zeros(0, int))(), ValueError, r"fit: train holds no example"),
    ("fit epochs float", lambda p: _fit(epochs=2.0)(), ValueError, r"fit: epochs must be an int >= 1, got 2.0"),
    ("fit epochs bool", lambda p: _fit(epochs=True)(), ValueError, r"fit: epochs must be an int >= 1, got True"),
    ("fit eval_batch_size 0", lambda p: _fit(eval_batch_size=0)(), ValueError, r"fit: eval_batch_size must be an int >= 1, got 0"),
    ("fit unknown setting", lambda p: _fit(epoch=3)(), TypeError, r"fit\(\) got an unexpected keyword argument 'epoch'; its settings are epochs, batch_size"),
    ("fit settings a dict", lambda p: _fit(settings={"epochs": 1})(), TypeError, r"fit: settings must be a FitSettings, got dict"),
    ("fit plateau_factor 2", lambda p: _fit(plateau_factor=2.0)(), ValueError, r"fit: plateau_factor must be a number in \(0, 1\), got 2.0"),
    ("fit out_dir empty", lambda p: _fit(out_dir="")(), ValueError, r"fit: out_dir must be a directory path \(or None: write nothing\), got ''"),
    ("fit progress string", lambda p: _fit(progress="no")(), ValueError, r"fit: progress must be True or False, got 'no'"),
    ("FitSettings epochs 0", lambda p: train.FitSettings(epochs=0), train.SettingError, r"FitSettings: epochs must be an int >= 1, got 0"),
    ("FitSettings resume without out_dir", lambda p: train.FitSettings(resume=True), ValueError, r"FitSettings: resume=True needs out_dir"),
    ("FitSettings positional", lambda p: train.FitSettings(3), TypeError, r"takes 1 positional argument"),
    ("fit_replicas one-model settings", lambda p: _replicas(early_stopping=2, max_steps=5)(), ValueError, r"fit_replicas: early_stopping, max_steps train one model \(funcnn.train.fit\)"),
    ("run out empty", lambda p: train.run(out=""), train.RunError, r"--out must name a directory, got '' \(leave it out for a new runs/MODEL-DATASET\)"),
    ("run unknown option", lambda p: train.run(epoch=3, out=str(p / "r")), train.RunError, r"run: unknown option 'epoch'; the options are RunConfig's fields"),
    ("run seed beyond 64 bits", lambda p: train.run(seed=2 ** 70, out=str(p / "r")), train.RunError, r"--seed must be an integer that fits in 64 bits"),
    ("run seed float", lambda p: train.run(seed=1.5, out=str(p / "r")), train.RunError, r"--seed must be an integer that fits in 64 bits .*got 1.5"),
    ("run epochs string", lambda p: train.run(epochs="3", out=str(p / "r")), train.RunError, r"--epochs must be an integer >= 1, got '3'"),
    ("run resume without a run", lambda p: train.run(resume=True, out=str(p / "none"), progress=False), train.RunError, r"--resume"),
    ("check_vjp seed string", lambda p: fn.verify.check_vjp(fn.relu, jnp.ones(2), seed="a"), ValueError, r"check_vjp: seed must be an int >= 0, got 'a'"),
    ("check_vjp seed negative", lambda p: fn.verify.check_vjp(fn.relu, jnp.ones(2), seed=-1), ValueError, r"check_vjp: seed must be an int >= 0, got -1"),
    ("check_vjp rtol negative", lambda p: fn.verify.check_vjp(fn.relu, jnp.ones(2), rtol=-1), ValueError, r"check_vjp: rtol must be a finite number >= 0, got -1"),
    ("check_vjp unknown platform", lambda p: fn.verify.check_vjp(fn.relu, jnp.ones(2), hlo_platforms=("banana",)), ValueError, r"check_vjp: hlo_platforms: unknown platform 'banana'"),
    ("check_vjp not callable", lambda p: fn.verify.check_vjp(3, jnp.ones(2)), TypeError, r"check_vjp: f must be a function, got int"),
    ("check_vjp string argument", lambda p: fn.verify.check_vjp(fn.relu, "x"), TypeError, r"check_vjp: arg\[0\] must be an array \(or a number\), got str"),
    ("check_vjp checks as a string", lambda p: fn.verify.check_vjp(fn.relu, jnp.ones(2), checks="vjp"), TypeError, r"check_vjp: checks must be a sequence of names, got the string 'vjp'"),
    ("check_vjp reference shape", lambda p: fn.verify.check_vjp(fn.relu, jnp.ones(2), reference=lambda x: x[:1]), ValueError, r"check_vjp: the reference's output \[\(1,\)\] does not match f's \[\(2,\)\]"),
    ("check_vjp integers only", lambda p: fn.verify.check_vjp(lambda i: i * 2, jnp.ones(2, int)), ValueError, r"check_vjp: no floating-point argument to differentiate"),
    ("check_vjp fd_eps", lambda p: fn.verify.check_vjp(fn.relu, jnp.ones(2), fd_eps=2.0), ValueError, r"check_vjp: fd_eps must be a number in \(0, 1\), got 2.0"),
    ("check_vjp num_cotangents", lambda p: fn.verify.check_vjp(fn.relu, jnp.ones(2), num_cotangents=0), ValueError, r"check_vjp: num_cotangents must be an int >= 1, got 0"),
    ("check_vjp fd_mode", lambda p: fn.verify.check_vjp(fn.relu, jnp.ones(2), fd_mode="all"), ValueError, r'check_vjp: fd_mode must be "auto", "full" or "directional", got .all.'),
    ("hvp tangent shape", lambda p: _hvp({"w": jnp.ones(3)})(p), ValueError, r"hvp: v\['w'\] has shape \(3,\), params \['w'\] has \(2,\)"),
    ("hvp tangent structure", lambda p: _hvp(jnp.ones(2))(p), ValueError, r"hvp: v must be a pytree like params"),
    ("fit optimizer a string", lambda p: _fit(optimizer="adam")(), TypeError, r"fit: optimizer must be an optax GradientTransformation .*got str 'adam'"),
    ("fit key an int", lambda p: _fit(key=3)(), TypeError, r"fit: key must be a PRNG key \(jax.random.PRNGKey\(seed\) or jax.random.key\(seed\)\), got int 3"),
    ("fit key of floats", lambda p: _fit(key=jnp.ones(5))(), TypeError, r"fit: key must be a PRNG key"),
    ("fit loss a string", lambda p: _fit(loss="mse")(), TypeError, r"fit: loss must be a function, got str 'mse'"),
    ("fit augment an int", lambda p: _fit(augment=3)(), TypeError, r"fit: augment must be a function, got int 3"),
    ("fit out_dir a file", lambda p: _fit(out_dir=_write(p / "f.txt", b"x"))(), NotADirectoryError, r"fit: out_dir .*f.txt is a file, not a directory"),
    ("fit train x shape", lambda p: _fit(x=np.ones((64, 5, 5, 1), np.float32))(), ValueError, r"fit: train x of shape \(64, 5, 5, 1\) does not fit the model: dense: x has 25 features"),
    ("fit val x shape", lambda p: _fit(val=(np.ones((4, 5, 5, 1), np.float32), np.arange(4)))(), ValueError, r"fit: val x of shape \(4, 5, 5, 1\) does not fit the model"),
    ("evaluate batch 0", lambda p: train.evaluate(train.make_eval_step(_lenet()[0].apply), *_lenet()[1:], jnp.ones((2, 32, 32, 1)), jnp.zeros(2, int), batch_size=0), ValueError, r"evaluate: batch_size must be an int >= 1, got 0"),
    ("run config a dict", lambda p: train.run(config={"epochs": 1}), train.RunError, r"run: config must be a RunConfig \(or pass the settings as keywords\), got dict"),
    ("save_safetensors arguments swapped", lambda p: fn.interop.save_safetensors({"a": np.ones(2)}, p / "a.safetensors"), TypeError, r"interop.save_safetensors: state_dict must be a dict of name -> array \(the order is save_safetensors\(path, state_dict\)\), got PosixPath"),
    ("save_safetensors into a directory", lambda p: fn.interop.save_safetensors(p, {"a": np.ones(2)}), IsADirectoryError, r"interop.save_safetensors: .* is a directory"),
    ("save_safetensors a str value", lambda p: fn.interop.save_safetensors(p / "a.safetensors", {"a": np.ones(2), "name": "lenet5"}), TypeError, r"interop.save_safetensors: state_dict\['name'\] is a str, not an array of numbers; a safetensors file holds tensors only"),
    ("fit labels as a Python list", lambda p: _fit(y=list(np.arange(64) % 10))(), TypeError, r"fit: train y must be arrays with one row per example, got a list holding int(64)? values \(np.asarray it\)"),
    ("avg_pool2d count_include_pad string", lambda p: fn.avg_pool2d(X4, 2, count_include_pad="False"), ValueError, r"avg_pool2d: count_include_pad must be True or False, got 'False'"),
    ("per_example_grads lengths", lambda p: train.per_example_grads(lambda q, b: jnp.sum(b[0]), {}, (np.ones((3, 2)), np.ones(4))), ValueError, r"per_example_grads: every array of the batch needs the same leading \(example\) axis, got shapes \(\(3, 2\), \(4,\)\)"),
    ("hessian_eigenvalues k 0", lambda p: fn.curvature.hessian_eigenvalues(lambda q: jnp.sum(q ** 2), jnp.ones(2), k=0), ValueError, r"hessian_eigenvalues: k must be an int >= 1, got 0"),
    ("hessian_eigenvalues iterations", lambda p: fn.curvature.hessian_eigenvalues(lambda q: jnp.sum(q ** 2), jnp.ones(2), k=2, iterations=0), ValueError, r"hessian_eigenvalues: iterations must be an int >= 1 \(block Lanczos steps\), got 0"),
    ("hessian_eigenvalues k above the parameters", lambda p: fn.curvature.hessian_eigenvalues(lambda q: jnp.sum(q ** 2), jnp.ones(42), k=47, iterations=50), ValueError, r"hessian_eigenvalues: k = 47 is more eigenvalues than the Hessian has: params hold 42 entries"),
    ("hessian_eigenvalues vector loss", lambda p: fn.curvature.hessian_eigenvalues(lambda q: q ** 2, jnp.ones(3)), ValueError, r"hessian_eigenvalues: loss\(params, \*args\) must return a scalar, got \(3,\)"),
    ("hessian_eigenvalues nan loss", lambda p: fn.curvature.hessian_eigenvalues(lambda q: jnp.sum(q) * jnp.nan, jnp.ones(3)), ValueError, r"hessian_eigenvalues: loss\(params, \*args\) is nan at these parameters"),
    ("hessian_eigenvalues seed -1", lambda p: fn.curvature.hessian_eigenvalues(lambda q: jnp.sum(q ** 2), jnp.ones(3), seed=-1), ValueError, r"hessian_eigenvalues: seed must be an int >= 0, got -1"),
    ("hessian_eigenvalues integer params", lambda p: fn.curvature.hessian_eigenvalues(lambda q: jnp.sum(q["w"] ** 2), {"w": jnp.ones(3), "step": jnp.zeros((), jnp.int32)}), TypeError, r"hessian_eigenvalues: params\['step'\] has dtype int32; derivatives are taken with respect to floating-point parameters"),
    ("hessian_eigenvalues loss not callable", lambda p: fn.curvature.hessian_eigenvalues("loss", jnp.ones(3)), TypeError, r"hessian_eigenvalues: loss must be a function"),
    ("hvp float64 v for float32 params", lambda p: fn.curvature.hvp(lambda q: jnp.sum(q ** 2), jnp.ones(3, jnp.float32), jnp.ones(3, jnp.float64)), ValueError, r"hvp: v has dtype float64, params has float32: a tangent has its primal's dtype"),
]

def _matrix():
    """Every integer setting of fit, fit_replicas and run, and every numeric option of check_vjp, with each kind of
    wrong value: the error names the setting and repeats the value."""
    rows = []
    for name in ("epochs", "batch_size", "eval_batch_size", "checkpoint_every", "early_stopping", "plateau_patience",
                 "max_steps"):
        for bad in (0, -2, 1.5, True, "3"):
            rows.append((f"fit {name}={bad!r}", lambda p, n=name, b=bad: _fit(**{n: b})(), ValueError,
                         rf"fit: {name} must be an int >= 1, got {re.escape(repr(bad))}"))
    for name in ("epochs", "batch_size", "eval_batch_size"):
        for bad in (0, -1, 2.5, False):
            rows.append((f"fit_replicas {name}={bad!r}", lambda p, n=name, b=bad: _replicas(**{n: b})(), ValueError,
                         rf"fit_replicas: {name} must be an int >= 1, got {re.escape(repr(bad))}"))
    for name in ("epochs", "batch_size", "checkpoint_every", "early_stopping", "plateau", "replicas"):
        for bad in (0, -1, 2.5, "3"):
            flag = "--" + name.replace("_", "-")
            rows.append((f"run {name}={bad!r}", lambda p, n=name, b=bad: train.run(out=str(p / "r"), **{n: b}),
                         train.RunError, rf"{flag} must be an integer >= 1, got {re.escape(repr(bad))}"))
    for name, bads, message in (
            ("rtol", (-1.0, float("nan"), float("inf"), "1e-3"), "must be a finite number >= 0"),
            ("fd_rtol", (-1e-6, float("inf"), "x"), "must be a finite number >= 0"),
            ("nondet_tol", (-1, float("nan")), "must be a finite number >= 0"),
            ("fd_eps", (0.0, 1.0, -1e-6, "1e-6"), r"must be a number in \(0, 1\)"),
            ("fd_max_elements", (0, -5, 2.5, True), "must be an int >= 1"),
            ("fd_directions", (0, 1.5, False), "must be an int >= 1"),
            ("num_cotangents", (-1, 2.0, True), "must be an int >= 1")):
        for bad in bads:
            rows.append((f"check_vjp {name}={bad!r}", lambda p, n=name, b=bad: fn.verify.check_vjp(
                fn.relu, jnp.ones(2), **{n: b}), ValueError, rf"check_vjp: {name} {message}, got"))
    for bad in ((0, 32, 1), (32, 32), (32, -1, 1), (32, 32, 1.5)):
        rows.append((f"export input_shape {bad}", lambda p, b=bad: fn.deploy.export(
            _lenet()[0].apply, *_lenet()[1:], b), ValueError, r"funcnn.export: input_shape is one example's shape|"
                     r"funcnn.export: the model does not take inputs of shape"))
    for cut in (0, 10, 100, 400):
        rows.append((f"load cut at {cut} bytes", lambda p, c=cut: fn.load(_write(p / "cut.npz", _saved(p).read_bytes()[:c])),
                     CorruptFileError, r"cut.npz is not a complete funcnn file"))
    return rows


MATRIX = _matrix()


CLI = [
    (["train", "--epochs", "-3"], r"--epochs must be an integer >= 1, got -3"),
    (["train", "--model", "clip_cnn"], r"digits does not fit clip_cnn's input \(8, 16, 16, 1\): images \(32, 32, 1\) "
                                       r"can be adapted to an image input \(H, W, C\) only"),
    (["train", "--epochs", "0"], r"--epochs must be an integer >= 1, got 0"),
    (["train", "--batch-size", "0"], r"--batch-size must be an integer >= 1, got 0"),
    (["train", "--batch-size", "5000"], r"--batch-size 5000 is larger than the 1258 training examples of digits"),
    (["train", "--lr", "-1"], r"--lr must be a finite number > 0, got -1.0"),
    (["train", "--lr", "0"], r"--lr must be a finite number > 0, got 0.0"),
    (["train", "--lr", "nan"], r"--lr must be a finite number > 0, got nan"),
    (["train", "--checkpoint-every", "0"], r"--checkpoint-every must be an integer >= 1, got 0"),
    (["train", "--early-stopping", "0"], r"--early-stopping must be an integer >= 1, got 0"),
    (["train", "--plateau", "-2"], r"--plateau must be an integer >= 1, got -2"),
    (["train", "--augment", "-1"], r"--augment must be a finite number >= 0"),
    (["train", "--replicas", "0"], r"--replicas must be an integer >= 1, got 0"),
    (["train", "--processes", "0"], r"--processes must be an integer >= 1, got 0"),
    (["train", "--processes", "2", "--local-devices", "-1"], r"--local-devices must be an integer >= 1, got -1"),
    (["train", "--sweep", "lr=0,1"], r"--sweep 'lr=0,1': lr values must be finite and > 0, got 0.0"),
    (["train", "--sweep", "momentum=0.9"], r"--sweep 'momentum=0.9': expected NAME=V1,V2,... with NAME one of lr, wd"),
    (["train", "--sweep", "lr=a"], r"--sweep 'lr=a': the values must be numbers"),
    (["train", "--replicas", "2", "--resume"], r"--resume, --early-stopping, --plateau and --checkpoint-every train one model"),
    (["train", "--resume", "--overwrite"], r"--resume continues the run .* and --overwrite deletes it"),
    (["train", "--model", "lenet6"], r"unknown model 'lenet6'; known models: alexnet"),
    (["train", "--dataset", "imagenet"], r"unknown dataset 'imagenet'; known datasets: cifar10"),
    (["train", "--optimizer", "rmsprop"], r"unknown optimizer 'rmsprop'; known: adam"),
    (["train", "--dataset", "mnist", "--data-dir", "/definitely/not/here"], r"data directory does not exist: /definitely/not/here"),
    (["train", "--download"], r"dataset 'digits' ships with funcnn's dependencies: there is nothing to download"),
    (["summary", "--model", "nope"], r"unknown model 'nope'"),
    (["summary", "--model", "lenet5", "--num-classes", "0"], r"--num-classes must be >= 1, got 0"),
    (["summary", "--model", "lenet5", "--input-shape", "8", "8", "1"], r"Conv: kernel 5 is larger than the padded input 2\+0\+0=2"),
    (["summary", "--model", "r3d_18", "--input-shape", "112", "112", "3"], r"--input-shape must be 4 sizes >= 1 for r3d_18 \(default: 16 112 112 3\), got 112 112 3"),
    (["summary", "--model", "lenet5", "--input-shape", "32", "0", "1"], r"--input-shape must be 3 sizes >= 1 for lenet5"),
    (["export", "--model", "r3d_18", "--params", "p.npz", "--out", "m", "--input-shape", "8", "8", "3"], r"--input-shape: input_shape must be 4 positive integers for r3d_18"),
    (["gradcheck", "--primitive", "conv4d"], r"unknown primitive 'conv4d'; known: .*avg_pool1d"),
    (["train", "--sweep", "lr=1e-3", "--sweep", "lr=1e-2,1e-1"], r"--sweep 'lr=1e-2,1e-1': lr is swept twice; give all its values in one list"),
    (["train", "--local-devices", "2"], r"--local-devices sets the simulated CPU devices of each process that --processes starts"),
    (["train", "--seed", str(2 ** 70)], r"--seed must be an integer that fits in 64 bits"),
    (["train", "--resume", "--out", "nowhere"], r"--resume"),
    (["export", "--model", "lenet5", "--params", "none.npz", "--out", "m.jaxexport"], r"no such file: none.npz"),
    (["train", "--out", ""], r"--out must name a directory, got ''"),
    (["train", "--out", "  "], r"--out must name a directory, got '  '"),
]


@pytest.mark.parametrize("call, error, match", [c[1:] for c in PRIMITIVES + LAYERS_AND_MODELS],
                         ids=[c[0] for c in PRIMITIVES + LAYERS_AND_MODELS])
def test_primitives_layers_and_models(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("call, error, match", [c[1:] for c in FILES_DATA_FIT], ids=[c[0] for c in FILES_DATA_FIT])
def test_files_data_and_fit(tmp_path, call, error, match):
    with pytest.raises(error, match=match):
        call(tmp_path)


@pytest.mark.parametrize("call, error, match", [c[1:] for c in GLUE + MATRIX], ids=[c[0] for c in GLUE + MATRIX])
def test_the_newer_glue(tmp_path, call, error, match):
    with pytest.raises(error, match=match):
        call(tmp_path)


@pytest.mark.parametrize("args, match", CLI, ids=[" ".join(a) for a, _ in CLI])
def test_cli_gives_one_line_errors(tmp_path, monkeypatch, capsys, args, match):
    monkeypatch.chdir(tmp_path)
    assert cli.main([*args, "--no-progress"] if args[0] == "train" else args) == 2
    err = capsys.readouterr().err
    assert err.startswith("funcnn: error: ") and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    import re

    assert re.search(match, err), err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing was written


def test_the_corpus_is_large():
    assert len(PRIMITIVES) + len(LAYERS_AND_MODELS) + len(FILES_DATA_FIT) + len(CLI) + len(GLUE) + len(MATRIX) >= 330


# -------------------------------------------------------------------------------------------------------------
# odd inputs with a legitimate result


def test_nan_propagates_through_the_primitives():
    """A NaN input is data, not an error: it reaches the output (ReLU and max pooling do not swallow it)."""
    x = jnp.ones((1, 4, 4, 2)).at[0, 1, 1, 0].set(jnp.nan)
    assert jnp.isnan(fn.conv2d(x, jnp.ones((3, 3, 2, 1)))).any()
    assert jnp.isnan(fn.relu(x)).any() and jnp.isnan(fn.max_pool2d(x, 2)).any()
    assert jnp.isnan(fn.avg_pool2d(x, 2)).any() and jnp.isnan(fn.softmax(x)).any()


@pytest.mark.parametrize("name, f, shape", [
    ("conv2d", lambda x: fn.conv2d(x, jnp.ones((3, 3, 2, 4)), padding=1), (0, 6, 6, 2)),
    ("conv2d 16 ch stride 2", lambda x: fn.conv2d(x, jnp.ones((3, 3, 16, 16)), stride=2, padding=1), (0, 8, 8, 16)),
    ("depth-wise", lambda x: fn.conv2d(x, jnp.ones((3, 3, 1, 4)), groups=4), (0, 6, 6, 4)),
    ("conv_transpose2d", lambda x: fn.conv_transpose2d(x, jnp.ones((3, 3, 2, 4)), stride=2), (0, 4, 4, 4)),
    ("max_pool2d", lambda x: fn.max_pool2d(x, 2), (0, 6, 6, 2)),
    ("avg_pool2d", lambda x: fn.avg_pool2d(x, 3, 1, padding=1, count_include_pad=False), (0, 6, 6, 2)),
    ("lp_pool2d", lambda x: fn.lp_pool2d(x, 2.0, 2), (0, 6, 6, 2)),
    ("global_avg_pool2d", fn.global_avg_pool2d, (0, 6, 6, 2)),
    ("dense", lambda x: fn.dense(x, jnp.ones((6, 3))), (0, 6)),
    ("relu", fn.relu, (0, 6)),
    ("softmax", fn.softmax, (0, 6)),
    ("softmax_cross_entropy", lambda x: fn.softmax_cross_entropy(x, jnp.zeros((0,), int)), (0, 6)),
])
def test_an_empty_batch_gives_an_empty_output_and_gradient(name, f, shape):
    """N = 0 is a batch with no example: every primitive maps it to an empty output, and its gradient is empty."""
    x = jnp.ones(shape)
    y = f(x)
    assert y.shape[0] == 0
    g = jax.grad(lambda x: jnp.sum(f(x)))(x)
    assert g.shape == x.shape


def test_an_empty_batch_through_a_model_in_evaluation():
    model = models.lenet5()
    _, params, state = model.init(KEY, (1, 32, 32, 1))
    logits, _ = model.apply(params, state, jnp.ones((0, 32, 32, 1)))
    assert logits.shape == (0, 10)
