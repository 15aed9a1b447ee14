"""funcnn's names, one table each, importable without JAX (so that `funcnn --help` answers at once). Every
registry that holds the things themselves is derived from these tables: `funcnn.models.MODELS` and `INPUT_SHAPES`
(and the models `funcnn.interop` converts) from `MODELS`, `funcnn.data.LOADERS` from `DATASETS`,
`funcnn.train.RECIPES` from `OPTIMIZERS`, the precision presets from `PRECISIONS`, the CPU engine settings
(`funcnn.primitives.conv.engines.CPU_ENGINES`) from `CPU_ENGINES`, the run directory's files (and the command's
description of them) from `RUN_FILES`, and the public primitives from `PRIMITIVES`. A name added here and nowhere
else fails at import with the missing function's name.
"""

from __future__ import annotations

from typing import NamedTuple


class Model(NamedTuple):
    """A zoo model: its constructor ("module:function" under funcnn.models), one example's input shape, and, for
    the models funcnn.interop converts, the function naming its layers' PyTorch keys (beside the model) with the
    constructor options and input of that PyTorch layout."""

    constructor: str
    input_shape: tuple
    torch_keys: str | None = None
    torch_options: tuple = ()
    torch_input: tuple | None = None


MODELS = {
    "lenet5": Model("classic:lenet5", (32, 32, 1), torch_keys="classic:sequential_keys"),
    "alexnet": Model("classic:alexnet", (227, 227, 3), torch_keys="classic:torchvision_keys",
                     torch_options=(("variant", "torchvision"),), torch_input=(224, 224, 3)),
    "vgg16": Model("classic:vgg16", (224, 224, 3), torch_keys="classic:torchvision_keys"),
    "resnet18": Model("resnet:resnet18", (224, 224, 3), torch_keys="resnet:torchvision_keys"),
    "resnet20": Model("resnet:resnet20", (32, 32, 3), torch_keys="resnet:torchvision_keys"),
    "mobilenet_v1": Model("mobile:mobilenet_v1", (224, 224, 3)),
    "all_conv": Model("classic:all_conv", (32, 32, 3)),
    "localizer": Model("localizer:localizer", (64, 64, 1)),
    "r3d_18": Model("resnet:r3d_18", (16, 112, 112, 3), torch_keys="resnet:video_keys"),
    "clip_cnn": Model("volumes:clip_cnn", (8, 16, 16, 1)),
}

# data set name -> the loader's name in funcnn.data.datasets
DATASETS = {"cifar10": "cifar10", "digits": "digits", "fashion_mnist": "fashion_mnist", "mnist": "mnist",
            "patterns3x3": "patterns3x3"}

# optimiser recipe name -> its function in funcnn.train.recipes
OPTIMIZERS = {"adam": "adam", "alexnet": "alexnet_recipe", "resnet": "resnet_recipe", "sgd": "sgd"}

# precision policy name -> (parameter, compute, output) dtypes (funcnn.train.precision)
PRECISIONS = {"float32": ("float32", "float32", "float32"), "bfloat16": ("float32", "bfloat16", "float32"),
              "float16": ("float32", "float16", "float32")}

# CPU engine setting -> the value of XLA's per-executable option xla_cpu_experimental_ynn_fusion_type (None: XLA's
# default set), for the steps funcnn compiles (funcnn.primitives.conv.engines.compiler_options); "onednn" also traces
# the convolutions for funcnn's oneDNN engine (funcnn.primitives.conv.tracing.use_onednn)
CPU_ENGINES = {
    "onednn": None,                                    # funcnn's oneDNN engine for the convolutions, the rest as XLA
                                                       # chooses ("eigen" on a jaxlib with YNNPACK bugs: YNN_BUGS)
    "eigen": "",                                       # no YNNPACK fusion: convolutions in Eigen, dots in XLA's own
    "xla": None,                                       # XLA's default: YNNPACK wherever it takes the op
    "ynn-dots": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT",  # YNNPACK for dots only, convolutions in Eigen
}

# what a run directory holds (funcnn.train.run), in the order `funcnn train --help` lists it
RUN_FILES = {
    "config.json": "the run's settings, as it ran them",
    "metrics.jsonl": "one JSON line per epoch: losses, accuracies, learning rate, epoch time, images/s",
    "checkpoint.npz": "the last complete checkpoint (parameters, state, optimiser state, step, data position)",
    "best.npz": "parameters and state of the epoch with the best validation accuracy",
    "params.npz": "the final parameters and state (load with funcnn.load)",
    "results.json": "test loss and accuracy, training time",
    "summary.json": "with --replicas / --sweep: every replica's settings and final metrics",
    "curves.png": "loss and accuracy per epoch",
    "filters.png": "the first convolution layer's filters",
    "feature_maps.png": "the maps of the first two convolution layers for one test image",
    "confusion.png": "the test confusion matrix",
    "replicas.png": "with --replicas / --sweep: every replica's validation accuracy per epoch",
}
RUN_MARKERS = ("config.json", "metrics.jsonl", "checkpoint.npz", "results.json")  # a directory holding one is a run
CHECKPOINT, METRICS, BEST, PARAMS, CONFIG, RESULTS = ("checkpoint.npz", "metrics.jsonl", "best.npz", "params.npz",
                                                      "config.json", "results.json")

PRIMITIVES = ("adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d",
              "adaptive_max_pool2d", "adaptive_max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d", "batch_norm",
              "border_pad", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
              "dense", "global_avg_pool1d", "global_avg_pool2d", "global_avg_pool3d", "group_norm", "layer_norm",
              "log_softmax", "lp_pool1d", "lp_pool2d", "lp_pool3d", "max_pool1d", "max_pool2d", "max_pool3d",
              "max_unpool1d", "max_unpool2d", "max_unpool3d", "relu", "sigmoid", "softmax", "softmax_cross_entropy",
              "tanh")

__all__ = ["Model", "MODELS", "DATASETS", "OPTIMIZERS", "PRECISIONS", "RUN_FILES", "RUN_MARKERS", "PRIMITIVES",
           "CHECKPOINT", "METRICS", "BEST", "PARAMS", "CONFIG", "RESULTS"]
